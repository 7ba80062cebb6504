"""Reading corrections back: a tile's corrections (``query tile``), and a job's tiles with the label to train on
(``dataset export``).

A tile's label is its newest correction (of any model: a person's label is about the tile, the model only named
the classes it was chosen from), else its prediction. ``newest_corrections()`` keeps one row per tile with
``row_number() OVER (PARTITION BY z, x, y ORDER BY created_at DESC, id DESC)``, which SQLite (3.25+) and
PostgreSQL both run; ``iter_job_labels`` joins it to a job's results, so the join reads only the job's rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Subquery, and_, func, or_, select
from sqlalchemy.orm import Session

from core.db import aware
from core.errors import TileclassError
from core.jobs import get_job
from core.queries.selections import YIELD_PER
from core.queries.types import RESULT_COLUMNS, TileAnswer, answer_from_row
from core.schema import TileCorrection, TileResult
from core.tiles import Tile


@dataclass(frozen=True, slots=True)
class CorrectionAnswer:
    """One person's label for one tile."""

    tile: Tile
    label: str
    model_hash: str  # the model whose classes the label was checked against
    author: str
    origin: str | None  # the file it was imported from
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "author": self.author, "corrected_at": self.created_at.isoformat(),
                "model": self.model_hash, "origin": self.origin}


@dataclass(frozen=True, slots=True)
class LabelledTile:
    """A job's result and, when a person corrected the tile, the newest correction (whose label wins)."""

    answer: TileAnswer
    correction: CorrectionAnswer | None

    @property
    def label(self) -> str:
        return self.correction.label if self.correction is not None else self.answer.label


def tile_corrections(session: Session, *, tile: Tile) -> list[CorrectionAnswer]:
    """Every correction of ``tile``, newest first (none for a tile without coordinates)."""
    if not tile.has_coordinates:
        return []
    rows = session.execute(
        select(TileCorrection.label, TileCorrection.model_hash, TileCorrection.author, TileCorrection.origin,
               TileCorrection.created_at)
        .where(TileCorrection.z == tile.z, TileCorrection.x == tile.x, TileCorrection.y == tile.y)
        .order_by(TileCorrection.created_at.desc(), TileCorrection.id.desc()))
    plain = Tile(tile.z, tile.x, tile.y)
    return [CorrectionAnswer(plain, label, model, author, origin, aware(at)) for label, model, author, origin, at
            in rows]


def newest_corrections() -> Subquery:
    """One row per corrected tile: its newest correction."""
    rank = func.row_number().over(partition_by=(TileCorrection.z, TileCorrection.x, TileCorrection.y),
                                  order_by=(TileCorrection.created_at.desc(), TileCorrection.id.desc()))
    ranked = select(TileCorrection.z, TileCorrection.x, TileCorrection.y, TileCorrection.label,
                    TileCorrection.model_hash, TileCorrection.author, TileCorrection.origin,
                    TileCorrection.created_at, rank.label("rank")).subquery("ranked")
    return select(ranked).where(ranked.c.rank == 1).subquery("newest")


def iter_job_labels(session: Session, *, job_id: int, min_confidence: float = 0.0) -> Iterator[LabelledTile]:
    """Stream a job's results that are corrected, or predicted at ``min_confidence`` or above.

    The job and ``min_confidence`` are checked at once (``NotFoundError``, ``TileclassError``), before the first
    row is read.
    """
    if not 0.0 <= min_confidence <= 1.0:
        raise TileclassError(f"--min-confidence must be within 0..1 (got {min_confidence})")
    get_job(session, job_id)
    newest = newest_corrections()
    columns = (*RESULT_COLUMNS, newest.c.label, newest.c.model_hash, newest.c.author, newest.c.origin,
               newest.c.created_at)
    stmt = _job_labels(select(*columns), newest, job_id, min_confidence).execution_options(yield_per=YIELD_PER)
    return (_labelled(row) for row in session.execute(stmt))


def count_job_labels(session: Session, *, job_id: int, min_confidence: float = 0.0) -> int:
    """How many tiles ``iter_job_labels`` gives (for a progress bar)."""
    newest = newest_corrections()
    stmt = _job_labels(select(func.count()).select_from(TileResult), newest, job_id, min_confidence)
    return int(session.scalar(stmt) or 0)


def _job_labels(stmt: Select[Any], newest: Subquery, job_id: int, min_confidence: float) -> Select[Any]:
    """``stmt`` over a job's results joined to their newest corrections, keeping the corrected or confident ones."""
    same_tile = and_(TileResult.z.is_not(None), newest.c.z == TileResult.z, newest.c.x == TileResult.x,
                     newest.c.y == TileResult.y)
    return stmt.outerjoin(newest, same_tile).where(
        TileResult.job_id == job_id, or_(newest.c.label.is_not(None), TileResult.confidence >= min_confidence))


def _labelled(row: Any) -> LabelledTile:
    answer = answer_from_row(row[: len(RESULT_COLUMNS)])
    label, model_hash, author, origin, created_at = row[len(RESULT_COLUMNS):]
    if label is None:
        return LabelledTile(answer, None)
    tile = answer.tile
    correction = CorrectionAnswer(Tile(tile.z, tile.x, tile.y), label, model_hash, author, origin, aware(created_at))
    return LabelledTile(answer, correction)
