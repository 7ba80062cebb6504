"""The first half of every publishing pass: walk → filter → batch. ``enqueue``, its rerun after a kill,
``resume`` and the dry run all take their batches from here; ``producer.publication`` publishes and records them.

One pass is a generator pipeline, so memory stays flat however big the region:

1. walk: the source lists the region's tiles in chunks of one directory (``core.sources``), from a resume
   position on when a rerun continues a job;
2. filter: tiles that already have a result for the model are dropped (``core.queries.classified``), and on a resume
   also those this job recorded as failed (they were tried, with bounded attempts);
3. batch: the kept tiles go into batches of at most ``batch_size`` tiles of one zoom. Between batches come
   ``DirectoryDone`` marks, which say how many tiles had been kept when a directory ended: once that many are
   published, the directory is finished and the resume position may move past it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from core.db import get_engine, session_scope
from core.queries.classified import ClassifiedFilter
from core.queries.failures import failed_identities
from core.region import Region
from core.sources import TileSource
from core.sources.base import Chunk, Key, WalkReport
from core.tiles import Tile

DEFAULT_BATCH_SIZE = 1024  # bench/enqueue.py: fewer, larger messages are what lets one producer pass 200k tiles/s
PROGRESS_INTERVAL = 0.1


@dataclass(frozen=True)
class Target:
    """What a pass publishes: the tiles of ``region`` in ``source``, for ``model_hash``, ``batch_size`` a batch."""

    source: TileSource
    region: Region | None
    model_hash: str
    batch_size: int = DEFAULT_BATCH_SIZE

    def region_record(self) -> dict[str, Any]:
        return (self.region or Region()).describe()


@dataclass
class PassStats:
    """Running counts of one pass (this run only, not earlier runs of a job)."""

    found: int = 0  # tiles in the region that the walk found
    skipped: int = 0  # of those, with a result for the model already
    failed: int = 0  # of those, recorded as failed by the job being resumed (not retried)
    enqueued: int = 0  # tiles published in batches (a dry run: would be)
    batches: int = 0
    waiting: bool = False  # blocked on a full broker queue
    per_zoom: Counter[int | None] = field(default_factory=Counter)
    report: WalkReport = field(default_factory=WalkReport)  # what the walk left out, and why

    def published(self, tiles: list[Tile]) -> None:
        self.enqueued += len(tiles)
        self.batches += 1
        self.per_zoom[tiles[0].z] += len(tiles)  # a batch holds one zoom
        self.waiting = False


@dataclass(frozen=True)
class DirectoryDone:
    """A directory ended after ``kept`` tiles of the pass had been kept; ``key`` is its walk position."""

    key: Key
    kept: int


class TileFilter:
    """Drops the tiles a pass must not publish: classified ones (unless forced) and, on a resume, the job's failed
    ones. Every query runs in its own short transaction, so the producer never holds a lock workers wait for."""

    def __init__(self, target: Target, *, skip_classified: bool = True, failed_of_job: int | None = None) -> None:
        self.classified = ClassifiedFilter(get_engine(), model_hash=target.model_hash,
                                           source_name=target.source.name, region=target.region) \
            if skip_classified else None
        self.failed = _failed_by(target, failed_of_job) if failed_of_job is not None else frozenset()

    def keep(self, chunk: Chunk, stats: PassStats) -> list[Tile]:
        kept = chunk.tiles if self.classified is None else self.classified.unclassified(chunk)
        stats.found += len(chunk.tiles)
        stats.skipped += len(chunk.tiles) - len(kept)
        if self.failed:
            tried = len(kept)
            kept = [tile for tile in kept if tile.identity() not in self.failed]
            stats.failed += tried - len(kept)
        return kept


def _failed_by(target: Target, job_id: int) -> frozenset[tuple[Any, ...]]:
    """The identities of the tiles ``job_id`` recorded as failed for its model."""
    with session_scope(read_only=True) as session:
        return failed_identities(session, job_id=job_id, model_hash=target.model_hash,
                                 source_name=target.source.name)


def walk_and_filter(target: Target, tile_filter: TileFilter, stats: PassStats, *, after: Key | None = None,
                    on_progress: Callable[[PassStats], None] | None = None,
                    stop: threading.Event | None = None) -> Iterator[tuple[Chunk, list[Tile]]]:
    """Each walked chunk with the tiles of it to publish; raises KeyboardInterrupt once ``stop`` is set."""
    shown = 0.0
    for chunk in target.source.tiles(target.region, after=after, report=stats.report):
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt
        kept = tile_filter.keep(chunk, stats)
        yield chunk, kept
        if on_progress is not None and time.monotonic() - shown >= PROGRESS_INTERVAL:
            shown = time.monotonic()
            on_progress(stats)


def in_batches(chunks: Iterator[tuple[Chunk, list[Tile]]], size: int) -> Iterator[list[Tile] | DirectoryDone]:
    """Batches of at most ``size`` tiles of one zoom, with a ``DirectoryDone`` after each directory's last chunk."""
    pending: list[Tile] = []
    kept = 0
    for chunk, tiles in chunks:
        if chunk.column is not None:  # one column, one zoom
            groups: Any = [(chunk.column[0], tiles)] if tiles else []
        else:  # a flat folder may mix zooms: sort, so that a chunk changes zoom a few times at most
            groups = groupby(sorted(tiles, key=_zoom_order), key=_zoom_order)
        for zoom, rows in groups:
            if pending and _zoom_order(pending[0]) != zoom:  # a batch holds one zoom
                yield pending
                pending = []
            pending.extend(rows)
            while len(pending) >= size:
                yield pending[:size]
                del pending[:size]
        kept += len(tiles)
        if chunk.last:
            yield DirectoryDone(chunk.key, kept)
    if pending:
        yield pending


def dry_run(target: Target, *, on_progress: Callable[[PassStats], None] | None = None,
            skip_classified: bool = True) -> PassStats:
    """Count per zoom the tiles and batches a pass would publish, publishing and recording nothing."""
    stats = PassStats()
    tile_filter = TileFilter(target, skip_classified=skip_classified)
    for step in in_batches(walk_and_filter(target, tile_filter, stats, on_progress=on_progress), target.batch_size):
        if not isinstance(step, DirectoryDone):
            stats.published(step)
    return stats


def _zoom_order(tile: Tile) -> int:
    return -1 if tile.z is None else tile.z
