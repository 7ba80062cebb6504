"""Repository functions over the results database; every function takes a session and keyword arguments.

Writes are idempotent bulk upserts (``INSERT … ON CONFLICT DO UPDATE`` on SQLite and PostgreSQL): re-running a
batch, as at-least-once delivery will, rewrites the same rows instead of adding new ones. Keys inside a batch are
de-duplicated (the last one wins) and sorted, so two writers always lock rows in the same order.

Reading the results back (a tile, a point, a bbox, a job's summary, streams for export) is ``core.queries``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, exists, func, select, tuple_
from sqlalchemy.orm import Session

from core.db import upsert_insert
from core.schema import FailedTile, Model, TileResult, utcnow

ROWS_PER_STATEMENT = 2_000
_UPDATED_ON_CONFLICT = ("job_id", "root_name", "path", "label", "confidence", "probabilities", "classified_at")


@dataclass(frozen=True, slots=True)
class TileKey:
    """Where a tile is: coordinates when it has them, and always its root and relative path."""

    root_name: str
    path: str
    z: int | None = None
    x: int | None = None
    y: int | None = None

    @property
    def has_coordinates(self) -> bool:
        return self.z is not None

    def identity(self) -> tuple[Any, ...]:
        """The unique key within one model: (z, x, y) with coordinates, else (root, path)."""
        if self.has_coordinates:
            return (0, self.z, self.x, self.y, "", "")
        return (1, -1, -1, -1, self.root_name, self.path)


@dataclass(frozen=True, slots=True)
class Classified:
    """One tile's prediction."""

    tile: TileKey
    label: str
    confidence: float
    probabilities: dict[str, float]


@dataclass(frozen=True, slots=True)
class Failure:
    """One tile that could not be classified, and why."""

    tile: TileKey
    reason: str


def _unique_sorted(items: Iterable[Any]) -> list[Any]:
    latest = {item.tile.identity(): item for item in items}
    return [latest[key] for key in sorted(latest)]


def record_results(
    session: Session, *, model_hash: str, job_id: int | None, results: Sequence[Classified]
) -> int:
    """Upsert a batch of predictions and clear their failure rows; returns the number of distinct tiles."""
    rows = _unique_sorted(results)
    if not rows:
        return 0
    now = utcnow()
    values = [
        {
            "model_hash": model_hash,
            "job_id": job_id,
            "z": r.tile.z,
            "x": r.tile.x,
            "y": r.tile.y,
            "root_name": r.tile.root_name,
            "path": r.tile.path,
            "label": r.label,
            "confidence": float(r.confidence),
            "probabilities": r.probabilities,
            "classified_at": now,
        }
        for r in rows
    ]
    with_coords = [v for v in values if v["z"] is not None]
    without = [v for v in values if v["z"] is None]
    for batch, elements, where in (
        (with_coords, ["model_hash", "z", "x", "y"], TileResult.z.is_not(None)),
        (without, ["model_hash", "root_name", "path"], TileResult.z.is_(None)),
    ):
        # Statements stay under the drivers' bound-parameter limits (65,535 for psycopg) at any batch size.
        for start in range(0, len(batch), ROWS_PER_STATEMENT):
            stmt = upsert_insert(session, TileResult).values(batch[start : start + ROWS_PER_STATEMENT])
            stmt = stmt.on_conflict_do_update(
                index_elements=elements,
                index_where=where,
                set_={col: stmt.excluded[col] for col in _UPDATED_ON_CONFLICT},
            )
            session.execute(stmt)
    _clear_failures(session, model_hash=model_hash, tiles=[r.tile for r in rows])
    return len(rows)


def _clear_failures(session: Session, *, model_hash: str, tiles: Sequence[TileKey]) -> None:
    keys = sorted({(t.root_name, t.path) for t in tiles})
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        session.execute(
            delete(FailedTile).where(
                FailedTile.model_hash == model_hash,
                tuple_(FailedTile.root_name, FailedTile.path).in_(chunk),
            )
        )


def record_failures(
    session: Session, *, model_hash: str, job_id: int | None, failures: Sequence[Failure]
) -> int:
    """Upsert failed tiles (counting attempts), except those that already have a result for this model."""
    rows = _unique_sorted(failures)
    if not rows:
        return 0
    now = utcnow()
    values = [
        {
            "model_hash": model_hash,
            "job_id": job_id,
            "z": f.tile.z,
            "x": f.tile.x,
            "y": f.tile.y,
            "root_name": f.tile.root_name,
            "path": f.tile.path,
            "reason": f.reason[:2000],
            "attempts": 1,
            "failed_at": now,
        }
        for f in rows
    ]
    stmt = upsert_insert(session, FailedTile).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["model_hash", "root_name", "path"],
        set_={
            "job_id": stmt.excluded.job_id,
            "reason": stmt.excluded.reason,
            "failed_at": stmt.excluded.failed_at,
            "attempts": FailedTile.__table__.c.attempts + 1,
        },
    )
    session.execute(stmt)
    # A tile classified by another delivery stays classified: drop the failure row it would contradict.
    session.execute(
        delete(FailedTile).where(
            FailedTile.model_hash == model_hash,
            exists().where(
                and_(
                    TileResult.model_hash == FailedTile.model_hash,
                    TileResult.root_name == FailedTile.root_name,
                    TileResult.path == FailedTile.path,
                )
            ),
        )
    )
    return len(rows)


def register_model(
    session: Session,
    *,
    model_hash: str,
    arch: str,
    class_names: Sequence[str],
    image_size: int,
    path: str,
    metrics: dict[str, Any] | None = None,
) -> Model:
    """Add a checkpoint to the registry, or return the existing row with the same hash (updating its path)."""
    model = session.get(Model, model_hash)
    if model is None:
        model = Model(
            hash=model_hash,
            arch=arch,
            class_names=list(class_names),
            image_size=image_size,
            path=path,
            metrics=metrics or {},
        )
        session.add(model)
    else:
        model.path = path
    session.flush()
    return model


def count_results(session: Session, *, model_hash: str | None = None, job_id: int | None = None) -> int:
    stmt = select(func.count()).select_from(TileResult)
    if model_hash is not None:
        stmt = stmt.where(TileResult.model_hash == model_hash)
    if job_id is not None:
        stmt = stmt.where(TileResult.job_id == job_id)
    return int(session.execute(stmt).scalar_one())
