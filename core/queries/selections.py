"""Region and job queries: which model answers, and the streams that read a selection's rows.

- A region (bbox + zoom) is answered by one model, so that a list or a map never mixes two class lists: the most
  recently registered model with any result there, unless a model or a job names one. Its rows are
  ``model_hash = ? AND z = ? AND x BETWEEN ? AND ? AND y BETWEEN ? AND ?``, a range scan of
  ``uq_tile_results_model_zxy`` that reads them in (x, y) order.
- A job's results are the rows whose ``job_id`` is that job (``ix_tile_results_job``). There is one row per
  (model, tile), so a tile that a later job classified again with the same model belongs to that later job.

Empty tiles (``empty_tiles``) are part of a selection only where asked for: ``iter_answers(include_empty=True)``
merges them into the results in the same (z, x, y) order, ``iter_empty`` streams them alone.

Streams (``iter_results``, ``iter_answers``, ``iter_empty``, ``iter_cells``, ``iter_failures``) use
``yield_per``: a server-side cursor on PostgreSQL, a stepped cursor on SQLite, so millions of rows never sit in
memory together.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from itertools import chain, islice
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, exists, false, func, select, true
from sqlalchemy.orm import Session

from core.bbox import BBox, TileRange
from core.errors import NotFoundError, TileclassError, TileError
from core.jobs import get_job
from core.models.info import ModelInfo
from core.models.lookups import find_model, get_model, info_of
from core.queries.types import (
    EMPTY_COLUMNS,
    FAILURE_COLUMNS,
    RESULT_COLUMNS,
    Answer,
    EmptyAnswer,
    MapCell,
    Selection,
    TileAnswer,
    TileFailure,
    answer_from_row,
    empty_from_row,
    failure_from_row,
)
from core.schema import EmptyTile, FailedTile, Model, TileResult
from core.tiles import Tile

YIELD_PER = 2000
TileTable = type[TileResult] | type[FailedTile] | type[EmptyTile]


def latest_model_in(session: Session, *, tiles: TileRange) -> ModelInfo | None:
    """The most recently registered model with at least one result in ``tiles``."""
    has_result = exists().where(TileResult.model_hash == Model.hash, *_range(TileResult, tiles))
    model = session.scalars(select(Model).where(has_result).order_by(Model.created_at.desc()).limit(1)).first()
    return info_of(model) if model is not None else None


def select_results(
    session: Session,
    *,
    job_id: int | None = None,
    bbox: BBox | None = None,
    zoom: int | None = None,
    model_ref: str | None = None,
    labels: Sequence[str] = (),
    min_confidence: float | None = None,
    uncertain: bool | None = None,
) -> Selection:
    """Check a region/job query's inputs against the database and settle which model answers it (``uncertain``:
    True, only the answers flagged uncertain; False, none of them; None, all)."""
    if job_id is None and bbox is None:
        raise TileclassError("name a job or a region (--bbox W,S,E,N with --zoom Z)")
    if bbox is not None and zoom is None:
        raise TileError("--bbox needs --zoom: the zoom whose tiles to read (0..24)")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise TileclassError(f"--min-confidence must be within 0..1 (got {min_confidence})")
    tiles = None
    if zoom is not None:
        tiles = bbox.tiles(zoom) if bbox is not None else TileRange.whole(zoom)
    model = find_model(session, ref=model_ref) if model_ref else None
    if job_id is not None:
        model = _job_model(session, job_id=job_id, named=model)
    elif model is None and tiles is not None:
        model = latest_model_in(session, tiles=tiles)
    check_labels(session, labels=labels, model=model)
    return Selection(model, job_id, tiles, bbox, tuple(dict.fromkeys(labels)), min_confidence, uncertain)


def _job_model(session: Session, *, job_id: int, named: ModelInfo | None) -> ModelInfo | None:
    job = get_job(session, job_id)
    digest = job.model_hash or session.scalar(
        select(TileResult.model_hash).where(TileResult.job_id == job_id).limit(1)
    )
    if named is not None and digest is not None and named.hash != digest:
        raise TileclassError(f"job {job_id} was classified by model {digest[:12]}, not {named.hash[:12]}")
    if digest is None:
        return named
    return get_model(session, model_hash=digest)


def check_labels(session: Session, *, labels: Sequence[str], model: ModelInfo | None) -> None:
    """``NotFoundError`` for a label that ``model`` (None: every registered model) does not have, listing them."""
    if model is not None:
        known, owner = list(model.class_names), f"model {model.hash[:12]}"
    else:
        known = sorted({name for names in session.scalars(select(Model.class_names)) for name in names})
        owner = "any registered model"
    for label in labels:
        if label not in known:
            raise NotFoundError(f"unknown label {label!r} for {owner}: labels are {', '.join(known) or 'none'}")


def _range(table: TileTable, tiles: TileRange) -> list[ColumnElement[bool]]:
    return [table.z == tiles.zoom, table.x.between(tiles.min_x, tiles.max_x),
            table.y.between(tiles.min_y, tiles.max_y)]


def selected(selection: Selection, table: TileTable = TileResult, *,
             by_model: bool = True) -> list[ColumnElement[bool]]:
    """The conditions on ``table`` of a selection (label, confidence and uncertainty filters apply to results
    only)."""
    conditions: list[ColumnElement[bool]] = []
    if by_model:
        conditions.append(table.model_hash == selection.model.hash if selection.model else false())
    if selection.job_id is not None:
        conditions.append(table.job_id == selection.job_id)
    if selection.tiles is not None:
        conditions += _range(table, selection.tiles)
    if table is TileResult and selection.labels:
        conditions.append(TileResult.label.in_(selection.labels))
    if table is TileResult and selection.min_confidence is not None:
        conditions.append(TileResult.confidence >= selection.min_confidence)
    if table is TileResult and selection.uncertain is not None:
        conditions.append(TileResult.uncertain.is_(true() if selection.uncertain else false()))
    return conditions


def results_statement(selection: Selection, *, limit: int | None = None) -> Select[*tuple[Any, ...]]:
    """The rows of a selection; a region's come in (x, y) order, straight from the index."""
    stmt = select(*RESULT_COLUMNS).where(*selected(selection))
    if selection.tiles is not None:
        stmt = stmt.order_by(TileResult.z, TileResult.x, TileResult.y)
    return stmt.limit(limit) if limit is not None else stmt


def iter_results(session: Session, *, selection: Selection, limit: int | None = None,
                 yield_per: int = YIELD_PER) -> Iterator[TileAnswer]:
    """Stream a selection's results, ``yield_per`` rows at a time."""
    stmt = results_statement(selection, limit=limit).execution_options(yield_per=yield_per)
    for row in session.execute(stmt):
        yield answer_from_row(row)


def iter_empty(session: Session, *, selection: Selection, limit: int | None = None,
               yield_per: int = YIELD_PER) -> Iterator[EmptyAnswer]:
    """Stream a selection's empty tiles (label and confidence filters do not apply to them), in (z, x, y) order
    for a region."""
    stmt = select(*EMPTY_COLUMNS).where(*selected(selection, EmptyTile))
    if selection.tiles is not None:
        stmt = stmt.order_by(EmptyTile.z, EmptyTile.x, EmptyTile.y)
    stmt = stmt.limit(limit) if limit is not None else stmt
    for row in session.execute(stmt.execution_options(yield_per=yield_per)):
        yield empty_from_row(row)


def iter_answers(session: Session, *, selection: Selection, include_empty: bool = False, limit: int | None = None,
                 yield_per: int = YIELD_PER) -> Iterator[Answer]:
    """The results of a selection and, with ``include_empty``, its empty tiles among them (a region's in (z, x, y)
    order: both streams come sorted, and are merged as they go)."""
    results = iter_results(session, selection=selection, limit=limit, yield_per=yield_per)
    if not include_empty:
        yield from results
        return
    empty = iter_empty(session, selection=selection, limit=limit, yield_per=yield_per)
    merged: Iterator[Answer] = heapq.merge(results, empty, key=lambda a: a.tile.identity()) \
        if selection.tiles is not None else chain(results, empty)
    yield from islice(merged, limit)


def query_bbox(session: Session, *, bbox: BBox, zoom: int, model_ref: str | None = None, job_id: int | None = None,
               labels: Sequence[str] = (), min_confidence: float | None = None, uncertain: bool | None = None,
               limit: int | None = None) -> list[TileAnswer]:
    """Every result in a bbox at one zoom, filtered; a list, for scripts (stream big regions with iter_results)."""
    selection = select_results(session, job_id=job_id, bbox=bbox, zoom=zoom, model_ref=model_ref, labels=labels,
                               min_confidence=min_confidence, uncertain=uncertain)
    return list(iter_results(session, selection=selection, limit=limit))


def iter_cells(session: Session, *, selection: Selection, yield_per: int = YIELD_PER) -> Iterator[MapCell]:
    """Stream what a map needs of each result with coordinates (no probabilities are decoded)."""
    stmt = select(TileResult.z, TileResult.x, TileResult.y, TileResult.path, TileResult.label, TileResult.source_name,
                  TileResult.job_id).where(*selected(selection), TileResult.z.is_not(None))
    for z, x, y, path, label, source_name, job_id in session.execute(stmt.execution_options(yield_per=yield_per)):
        yield MapCell(Tile(z, x, y, path), label, source_name, job_id)


def iter_failures(session: Session, *, selection: Selection,
                  yield_per: int = YIELD_PER) -> Iterator[TileFailure]:
    """Stream the selection's failed tiles (label and confidence filters do not apply to them)."""
    stmt = select(*FAILURE_COLUMNS).where(*selected(selection, FailedTile))
    for row in session.execute(stmt.execution_options(yield_per=yield_per)):
        yield failure_from_row(row)


def count_selected(session: Session, *, selection: Selection, include_empty: bool = False) -> int:
    """How many results (``include_empty``: and empty tiles) a selection holds (for progress bars)."""
    tables: tuple[TileTable, ...] = (TileResult, EmptyTile) if include_empty else (TileResult,)
    return sum(int(session.scalar(select(func.count()).select_from(table).where(*selected(selection, table))) or 0)
               for table in tables)


def extents(session: Session, *, selection: Selection) -> list[tuple[TileRange, int]]:
    """Per zoom, the tile range that a selection's results, failures and empty tiles span, and how many they are."""
    spans: dict[int, tuple[TileRange, int]] = {}
    for table in (TileResult, FailedTile, EmptyTile):
        stmt = (select(table.z, func.min(table.x), func.max(table.x), func.min(table.y), func.max(table.y),
                       func.count()).where(*selected(selection, table), table.z.is_not(None)).group_by(table.z))
        for row in session.execute(stmt):
            # Grouped over rows with coordinates, so none of these is NULL.
            z, min_x, max_x, min_y, max_y, count = cast(tuple[int, int, int, int, int, int], tuple(row))
            found = TileRange(z, min_x, max_x, min_y, max_y)
            if z in spans:
                seen, before = spans[z]
                found = TileRange(z, min(seen.min_x, min_x), max(seen.max_x, max_x), min(seen.min_y, min_y),
                                  max(seen.max_y, max_y))
                count += before
            spans[z] = (found, count)
    return [spans[z] for z in sorted(spans)]
