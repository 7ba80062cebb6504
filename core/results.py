"""Writing results: repository functions that take a session and keyword arguments.

Writes are idempotent bulk upserts (``INSERT … ON CONFLICT DO UPDATE`` on SQLite and PostgreSQL): re-running a
batch, as at-least-once delivery will, rewrites the same rows instead of adding new ones. A tile is in at most one
of the three tables for a model: a result clears its failure and empty rows, and a failure or an empty row is not
kept for a tile that has a result; the later of a failure and an empty row replaces the other. All tables key a
tile the same way (``Tile.identity``: coordinates where it has them, else source and path). Keys inside a batch are
de-duplicated (the last one wins) and sorted, so two writers always lock rows in the same order.

Reading the results back (a tile, a point, a bbox, a job's summary, streams for export) is ``core.queries``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, or_, text, tuple_
from sqlalchemy.orm import Session

from core.db import upsert_insert
from core.schema import EmptyTile, FailedTile, TileResult, utcnow
from core.tiles import Tile

KEYS_PER_DELETE = 500
# Rows for the upserts are keyed by column: the tile's source name is the column root_name (``TileRow.source_name``).
_UPDATED_ON_CONFLICT = ("job_id", "root_name", "path", "label", "confidence", "probabilities", "classified_at",
                        "coverage", "uncertain")


@dataclass(frozen=True, slots=True)
class Classified:
    """One tile's prediction, and the share of its pixels that held data (``coverage``; 1.0: all of them)."""

    tile: Tile
    label: str
    confidence: float
    probabilities: dict[str, float]
    coverage: float = 1.0


@dataclass(frozen=True, slots=True)
class Failure:
    """One tile that could not be classified, and why."""

    tile: Tile
    reason: str


@dataclass(frozen=True, slots=True)
class Empty:
    """One tile with nothing to classify (no tile at the server, entirely transparent or nodata), and which."""

    tile: Tile
    reason: str


TileTable = type[TileResult] | type[FailedTile] | type[EmptyTile]


def _rows(items: Iterable[Classified] | Iterable[Failure] | Iterable[Empty], *, model_hash: str, job_id: int | None,
          source_name: str, columns: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per distinct tile of ``items`` (the last one wins), sorted by tile: its key, then ``columns(item)``."""
    latest = {item.tile.identity(): item for item in items}
    return [{"model_hash": model_hash, "job_id": job_id, "z": item.tile.z, "x": item.tile.x, "y": item.tile.y,
             "root_name": source_name, "path": item.tile.path} | columns(item)
            for item in (latest[key] for key in sorted(latest))]


def _upsert(session: Session, table: TileTable, rows: list[dict[str, Any]],
            updates: Callable[[Any], dict[str, Any]]) -> None:
    """Insert ``rows``, updating on conflict with either of the table's two tile keys."""
    with_coordinates = [row for row in rows if row["z"] is not None]
    without = [row for row in rows if row["z"] is None]
    for part, key, where in ((with_coordinates, ["model_hash", "z", "x", "y"], table.z.is_not(None)),
                             (without, ["model_hash", "root_name", "path"], table.z.is_(None))):
        if not part:
            continue
        # One statement for every row (an executemany): compiled once per process and cached, where a multi-row
        # VALUES of each batch's size was compiled afresh for every batch, most of a worker's CPU time per batch.
        stmt = upsert_insert(session, table.__table__)
        session.execute(stmt.on_conflict_do_update(index_elements=key, index_where=where, set_=updates(stmt)), part)


def same_tile(table: TileTable, tiles: Sequence[Tile],
              source_name: str) -> list[ColumnElement[bool]]:
    """Conditions selecting ``table``'s rows for ``tiles`` (by coordinates, else by source and path), in parts."""
    coordinates = sorted({(t.z, t.x, t.y) for t in tiles if t.z is not None})
    paths = sorted({t.path for t in tiles if t.z is None and t.path is not None})
    conditions: list[ColumnElement[bool]] = []
    for start in range(0, len(coordinates), KEYS_PER_DELETE):
        keys = coordinates[start : start + KEYS_PER_DELETE]
        conditions.append(and_(table.z.is_not(None), tuple_(table.z, table.x, table.y).in_(keys)))
    for start in range(0, len(paths), KEYS_PER_DELETE):
        names = paths[start : start + KEYS_PER_DELETE]
        conditions.append(and_(table.z.is_(None), table.source_name == source_name, table.path.in_(names)))
    return conditions


# A batch's write transaction never waits on its client; idle this long, its client is stuck, not busy.
LOCK_HOLDER_IDLE_TIMEOUT_S = 30
_IDLE_TIMEOUT_SET_FOR = "tileclass.lock_holder_idle_timeout"  # session.info key: the transaction it was set in


def lock_tiles(session: Session, *, model_hash: str, source_name: str, tiles: Iterable[Tile]) -> None:
    """On PostgreSQL, hold a transaction lock per (model, tile) until commit, taken in one sorted order.

    A success and a failure of one tile written by two transactions at once would otherwise each miss the other's
    uncommitted row, and both rows would stay: "no tile is both failed and classified" needs the second writer to
    wait for the first. SQLite serialises its writers already.

    The holder must not sit on the locks: a writer frozen mid-transaction (SIGSTOP, a paused VM, a lost network)
    would block the redelivered run of its batch for ever. PostgreSQL ends such a session after
    LOCK_HOLDER_IDLE_TIMEOUT_S idle, releasing its locks; the frozen writer's next statement then fails and its
    retry writes the same rows again.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({_lock_key(model_hash, source_name, tile) for tile in tiles})
    if keys:
        transaction = session.get_transaction()
        if session.info.get(_IDLE_TIMEOUT_SET_FOR) is not transaction:  # once per transaction, not per call
            session.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = '{LOCK_HOLDER_IDLE_TIMEOUT_S}s'"))
            session.info[_IDLE_TIMEOUT_SET_FOR] = transaction
        session.execute(text("SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest(CAST(:keys AS bigint[])) "
                             "AS k ORDER BY k) AS ordered"), {"keys": keys})


def _lock_key(model_hash: str, source_name: str, tile: Tile) -> int:
    place = f"{tile.z}/{tile.x}/{tile.y}" if tile.z is not None else f"{source_name}|{tile.path}"
    identity = f"{model_hash}|{place}"
    return int.from_bytes(hashlib.blake2b(identity.encode(), digest_size=8).digest(), "big", signed=True)


def is_uncertain(confidence: float, uncertain_below: float | None) -> bool:
    """Whether an answer of ``confidence`` is flagged uncertain under its job's bound (None: no answer is)."""
    return uncertain_below is not None and confidence < uncertain_below


def record_results(session: Session, *, model_hash: str, job_id: int | None, source_name: str,
                   results: Sequence[Classified], uncertain_below: float | None = None) -> int:
    """Upsert a batch of predictions and clear their failure rows; returns the number of distinct tiles.

    Each keeps its coverage, and is flagged ``uncertain`` when less confident than ``uncertain_below`` (its job's).
    """
    now = utcnow()
    lock_tiles(session, model_hash=model_hash, source_name=source_name, tiles=(r.tile for r in results))
    rows = _rows(results, model_hash=model_hash, job_id=job_id, source_name=source_name, columns=lambda r: {
        "label": r.label, "confidence": float(r.confidence), "probabilities": r.probabilities, "classified_at": now,
        "coverage": float(r.coverage), "uncertain": is_uncertain(r.confidence, uncertain_below)})
    _upsert(session, TileResult, rows, lambda stmt: {col: stmt.excluded[col] for col in _UPDATED_ON_CONFLICT})
    _forget(session, (FailedTile, EmptyTile), model_hash, [r.tile for r in results], source_name)
    return len(rows)


def record_failures(session: Session, *, model_hash: str, job_id: int | None, source_name: str,
                    failures: Sequence[Failure]) -> int:
    """Upsert failed tiles (counting attempts), except those that already have a result for this model."""
    now = utcnow()
    rows = _rows(failures, model_hash=model_hash, job_id=job_id, source_name=source_name,
                 columns=lambda f: {"reason": f.reason[:2000], "attempts": 1, "failed_at": now})
    return _record_unclassified(session, FailedTile, rows, model_hash=model_hash, source_name=source_name,
                                tiles=[f.tile for f in failures], updates=lambda stmt: {
        "job_id": stmt.excluded.job_id, "reason": stmt.excluded.reason, "failed_at": stmt.excluded.failed_at,
        "attempts": FailedTile.__table__.c.attempts + 1})


def record_empty(session: Session, *, model_hash: str, job_id: int | None, source_name: str,
                 empty: Sequence[Empty]) -> int:
    """Upsert tiles with nothing to classify, except those that already have a result for this model."""
    now = utcnow()
    rows = _rows(empty, model_hash=model_hash, job_id=job_id, source_name=source_name,
                 columns=lambda e: {"reason": e.reason[:2000], "found_at": now})
    return _record_unclassified(session, EmptyTile, rows, model_hash=model_hash, source_name=source_name,
                                tiles=[e.tile for e in empty], updates=lambda stmt: {
        "job_id": stmt.excluded.job_id, "reason": stmt.excluded.reason, "found_at": stmt.excluded.found_at})


def _record_unclassified(session: Session, table: type[FailedTile] | type[EmptyTile], rows: list[dict[str, Any]],
                         *, model_hash: str, source_name: str, tiles: list[Tile],
                         updates: Callable[[Any], dict[str, Any]]) -> int:
    """Upsert failure or empty rows; the other kind's rows for those tiles go, and none stays beside a result."""
    lock_tiles(session, model_hash=model_hash, source_name=source_name, tiles=tiles)
    if not rows:
        return 0
    _upsert(session, table, rows, updates)
    _forget(session, (EmptyTile,) if table is FailedTile else (FailedTile,), model_hash, tiles, source_name)
    _drop_classified(session, table, model_hash)
    return len(rows)


def _forget(session: Session, tables: Sequence[type[FailedTile] | type[EmptyTile]], model_hash: str,
            tiles: Sequence[Tile], source_name: str) -> None:
    """Delete the rows of ``tables`` for ``tiles``: what was just recorded about them replaces them."""
    for table in tables:
        for condition in same_tile(table, tiles, source_name):
            session.execute(delete(table).where(table.model_hash == model_hash, condition))


def _drop_classified(session: Session, table: type[FailedTile] | type[EmptyTile], model_hash: str) -> None:
    """A tile classified by another delivery stays classified: drop the rows of ``table`` it would contradict."""
    classified = exists().where(TileResult.model_hash == table.model_hash, or_(
        and_(table.z.is_not(None), TileResult.z == table.z, TileResult.x == table.x, TileResult.y == table.y),
        and_(table.z.is_(None), TileResult.z.is_(None), TileResult.source_name == table.source_name,
             TileResult.path == table.path)))
    session.execute(delete(table).where(table.model_hash == model_hash, classified))
