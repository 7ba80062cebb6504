"""Enqueue a region of a tile tree as classify batches: walk, drop classified tiles, publish, record, resume.

One pass is a generator pipeline (walk → filter → batches → broker), so memory stays flat however big the region.

Jobs and resume. A job row records the root (name and absolute path), the layout, the region asked for and, in
``region["resume_after"]``, the walk position up to which every tile has been published and recorded. Running
the same request again (same root path, model, layout and region) continues the newest job for it that is still
``enqueuing`` (or reports that a ``queued`` one is already fully enqueued) instead of starting another; ``force``
always starts a new job. A resumed walk starts after the recorded position, so batches still waiting in the broker
are not published twice; only the directory that was being walked is read again, and its tiles that are still
unclassified may be published a second time. That, and a producer killed in the instant between publishing a
batch and recording it, can make a tile be classified twice: results are upserts, so this costs time, never a
duplicate row. The job's totals are summed from its batch rows when the walk ends, so they always match what the
workers report.

Batches hold tiles of one zoom (a dry run's per-zoom batch counts are what a run publishes for a tree layout).

Recording. Published batches are written to ``job_batches`` (with the position and running totals) at most every
``RECORD_INTERVAL`` seconds, before waiting for room in the broker, at the end and on interruption; a worker may
finish a batch before that, so the write keeps a row it finds already done.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError
from kombu.utils.url import maybe_sanitize_url
from sqlalchemy import select

from core import jobs
from core.db import get_engine, session_scope
from core.errors import TileclassError
from core.layouts import Layout
from core.queue import ClassifyBatch, TileRow
from core.region import Region
from core.schema import Job, JobKind, JobState
from core.walk import Chunk, Key, WalkReport, walk
from producer.classified import ClassifiedFilter
from producer.publish import Publisher

DEFAULT_BATCH_SIZE = 1024  # bench/enqueue.py: fewer, larger messages are what lets one producer pass 200k tiles/s
RECORD_INTERVAL = 0.5
PROGRESS_INTERVAL = 0.1
CURSOR = "resume_after"
# Batch numbers are reserved in blocks, in the job row, before they are used: a batch can be in the broker before
# its row is recorded, and a rerun after a kill must not give another batch the same (job, seq).
SEQ_RESERVED = "seq_reserved"
# Every batch number below this one is recorded; numbers from here to the reservation may have reached the broker
# unrecorded (the producer was killed in between), and a rerun supersedes them because it publishes their tiles again.
SEQ_RECORDED = "seq_recorded"
SEQ_BLOCK = 256


@dataclass(frozen=True)
class EnqueueRequest:
    """What to enqueue: a tile root and its layout, an optional region, and the model to classify with."""

    root: Path
    root_name: str
    layout: Layout
    region: Region | None
    model_hash: str
    batch_size: int = DEFAULT_BATCH_SIZE
    force: bool = False

    def region_record(self) -> dict[str, Any]:
        return (self.region or Region()).describe()


@dataclass
class EnqueueStats:
    """Running counts of one pass (this run only, not earlier runs of a resumed job)."""

    found: int = 0  # tiles in the region that the walk found
    enqueued: int = 0  # tiles published in batches
    skipped: int = 0  # tiles that already had a result for the model
    batches: int = 0
    waiting: bool = False  # blocked on a full broker queue
    per_zoom: Counter[int | None] = field(default_factory=Counter)  # enqueued (dry run: would be) per zoom


@dataclass
class EnqueueResult:
    job_id: int | None  # None when nothing was enqueued and no job existed
    resumed: bool
    state: str | None
    stats: EnqueueStats
    report: WalkReport


class BrokerUnavailable(TileclassError):
    """The broker cannot be reached; what was published is recorded."""


class Interrupted(Exception):
    """The producer was interrupted; everything published so far is recorded and the job can be resumed."""

    def __init__(self, job_id: int | None, stats: EnqueueStats) -> None:
        super().__init__(f"interrupted (job {job_id})")
        self.job_id, self.stats = job_id, stats


def find_resumable(request: EnqueueRequest) -> Job | None:
    """The newest unfinished job for exactly this request (never with ``force``)."""
    if request.force:
        return None
    asked = request.region_record()
    with session_scope() as session:
        candidates = session.scalars(select(Job).where(
            Job.kind == JobKind.CLASSIFY, Job.state.in_([JobState.ENQUEUING, JobState.QUEUED]),
            Job.model_hash == request.model_hash, Job.root_path == str(request.root),
            Job.layout == request.layout.name,
        ).order_by(Job.id.desc()))
        for job in candidates:
            if {k: v for k, v in job.region.items() if k not in (CURSOR, SEQ_RESERVED, SEQ_RECORDED)} == asked:
                return job
    return None


def plan(request: EnqueueRequest, *, on_progress: Callable[[EnqueueStats], None] | None = None
         ) -> EnqueueResult:
    """A dry run: count per zoom what ``enqueue`` would publish, publishing and recording nothing."""
    stats, report = EnqueueStats(), WalkReport()
    for _chunk, kept in _unclassified(request, stats, report, after=None, on_progress=on_progress):
        for row in kept:
            stats.per_zoom[row[0]] += 1
        stats.enqueued += len(kept)
    stats.batches = sum(-(-n // request.batch_size) for n in stats.per_zoom.values())
    return EnqueueResult(None, False, None, stats, report)


def enqueue(request: EnqueueRequest, *, app: Celery, max_queued: int,
            on_progress: Callable[[EnqueueStats], None] | None = None, stop: threading.Event | None = None,
            poll_interval: float | None = None) -> EnqueueResult:
    """Walk, publish and record; raises ``Interrupted`` (after recording) on KeyboardInterrupt or ``stop``."""
    resumable = find_resumable(request)
    run = _Run(request, resumable)
    if resumable is not None and resumable.state != JobState.ENQUEUING:
        return EnqueueResult(resumable.id, True, resumable.state, run.stats, run.report)
    with app.producer_or_acquire() as producer:
        publisher = Publisher(app, producer, max_queued=max_queued, before_wait=run.record, stop=stop,
                              on_wait=lambda _count: run.waiting(on_progress),
                              **({"poll_interval": poll_interval} if poll_interval else {}))
        try:
            run.publish_all(publisher, on_progress, stop)
        except KeyboardInterrupt:
            run.record()
            raise Interrupted(run.job_id, run.stats) from None
        except OperationalError as exc:  # kombu's "broker unreachable", after Celery's publish retries
            run.record()
            hint = f"; job {run.job_id} is resumable" if run.job_id is not None else ""
            raise BrokerUnavailable(f"cannot reach the broker at {maybe_sanitize_url(app.conf.broker_url)}: {exc}"
                                    f"{hint}") from None
    state = run.finish()
    return EnqueueResult(run.job_id, resumable is not None, state, run.stats, run.report)


def _unclassified(request: EnqueueRequest, stats: EnqueueStats, report: WalkReport, *, after: Key | None,
                  on_progress: Callable[[EnqueueStats], None] | None,
                  stop: threading.Event | None = None) -> Iterator[tuple[Chunk, list[TileRow]]]:
    """Each walked chunk with the tiles of it that still need classifying, counting found and skipped."""
    filtered = None if request.force else ClassifiedFilter(
        get_engine(), model_hash=request.model_hash, root_name=request.root_name, region=request.region)
    shown = 0.0
    for chunk in walk(request.root, request.layout, request.region, after=after, report=report):
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt
        kept = chunk.tiles if filtered is None else filtered.unclassified(chunk)
        stats.found += len(chunk.tiles)
        stats.skipped += len(chunk.tiles) - len(kept)
        yield chunk, kept
        if on_progress is not None and time.monotonic() - shown >= PROGRESS_INTERVAL:
            shown = time.monotonic()
            on_progress(stats)


class _Run:
    """One producer pass over one job: batching, the resume position, and recording."""

    def __init__(self, request: EnqueueRequest, job: Job | None) -> None:
        self.request, self.stats, self.report = request, EnqueueStats(), WalkReport()
        self.job_id = job.id if job is not None else None
        self.after = _key_from_json(job.region.get(CURSOR)) if job is not None else None
        self.cursor = self.after
        self.base_skipped = job.skipped_tiles if job is not None else 0
        self.next_seq = 0
        if job is not None:
            with session_scope() as session:
                self.next_seq = max(jobs.next_batch_seq(session, job_id=job.id),
                                    int(job.region.get(SEQ_RESERVED) or 0))
                recorded = int(job.region.get(SEQ_RECORDED, self.next_seq))
                jobs.supersede_batches(session, job_id=job.id, seqs=range(recorded, self.next_seq))
        self.reserved = self.next_seq  # numbers below this are recorded in the job as possibly in use
        self.unrecorded: list[tuple[int, int]] = []  # (seq, tiles) published since the last record()
        self.finished_dirs: list[tuple[int, Key]] = []  # (tiles accepted when the directory ended, its key)
        self.accepted = 0
        self.recorded_at = time.monotonic()

    def publish_all(self, publisher: Publisher, on_progress: Callable[[EnqueueStats], None] | None,
                    stop: threading.Event | None) -> None:
        size = self.request.batch_size
        pending: list[TileRow] = []
        for chunk, kept in _unclassified(self.request, self.stats, self.report, after=self.after,
                                         on_progress=on_progress, stop=stop):
            if chunk.column is not None:  # one column, one zoom
                groups: Any = [(chunk.column[0], kept)] if kept else []
            else:  # a flat folder may mix zooms: sort, so that a chunk changes zoom a few times at most
                groups = groupby(sorted(kept, key=_zoom_order), key=_zoom_order)
            for zoom, rows in groups:
                if pending and _zoom_order(pending[0]) != zoom:  # a batch holds one zoom
                    self._send(publisher, pending)
                    pending = []
                pending.extend(rows)
                while len(pending) >= size:
                    self._send(publisher, pending[:size])
                    del pending[:size]
            self.accepted += len(kept)
            if chunk.last:
                self._directory_done(chunk.key)
        if pending:
            self._send(publisher, pending)
        self._advance_cursor()

    def _directory_done(self, key: Key) -> None:
        if self.finished_dirs and self.finished_dirs[-1][0] == self.accepted:
            self.finished_dirs[-1] = (self.accepted, key)
        else:
            self.finished_dirs.append((self.accepted, key))
        self._advance_cursor()

    def _advance_cursor(self) -> None:
        while self.finished_dirs and self.finished_dirs[0][0] <= self.stats.enqueued:
            self.cursor = self.finished_dirs.pop(0)[1]

    def _send(self, publisher: Publisher, tiles: list[TileRow]) -> None:
        if self.job_id is None:
            publisher.check()  # an unreachable broker fails here, before a job row exists
            self._create_job()
        assert self.job_id is not None
        if self.next_seq >= self.reserved:
            self.reserved = self.next_seq + SEQ_BLOCK
            self.record()  # writes the reservation before any of its numbers reaches the broker
        batch = ClassifyBatch(job_id=self.job_id, seq=self.next_seq, model_hash=self.request.model_hash,
                              root=self.request.root_name, tiles=tiles)
        publisher.send(batch)
        self.unrecorded.append((self.next_seq, len(tiles)))
        self.next_seq += 1
        self.stats.enqueued += len(tiles)
        self.stats.batches += 1
        self.stats.waiting = False
        self.stats.per_zoom[tiles[0][0]] += len(tiles)  # a batch holds one zoom
        self._advance_cursor()
        if time.monotonic() - self.recorded_at >= RECORD_INTERVAL:
            self.record()

    def _create_job(self) -> None:
        request = self.request
        with session_scope() as session:
            self.job_id = jobs.create_job(
                session, kind=JobKind.CLASSIFY, model_hash=request.model_hash, root_name=request.root_name,
                root_path=str(request.root), layout=request.layout.name, region=request.region_record(),
            ).id

    def waiting(self, on_progress: Callable[[EnqueueStats], None] | None) -> None:
        self.stats.waiting = True
        if on_progress is not None:
            on_progress(self.stats)

    def record(self) -> None:
        """Write the published batches, the resume position and running totals in one transaction."""
        self.recorded_at = time.monotonic()
        if self.job_id is None:
            return
        with session_scope() as session:
            jobs.record_batches_enqueued(session, job_id=self.job_id, batches=self.unrecorded)
            job = jobs.get_job(session, self.job_id)
            job.total_tiles, job.total_batches = jobs.batch_totals(session, job_id=self.job_id)
            job.skipped_tiles = self.base_skipped + self.stats.skipped
            job.region = {**self.request.region_record(), CURSOR: self.cursor, SEQ_RESERVED: self.reserved,
                          SEQ_RECORDED: self.next_seq}
        self.unrecorded = []

    def finish(self) -> str | None:
        """Record the rest and hand the job over to completion tracking; returns its state."""
        self.record()
        if self.job_id is None:
            return None
        with session_scope() as session:
            tiles, batches = jobs.batch_totals(session, job_id=self.job_id)
            jobs.finish_enqueue(session, job_id=self.job_id, total_tiles=tiles, total_batches=batches,
                                skipped=self.base_skipped + self.stats.skipped)
            return jobs.get_job(session, self.job_id).state


def _zoom_order(row: TileRow) -> int:
    return -1 if row[0] is None else row[0]


def _key_from_json(value: Any) -> Key | None:
    """A resume position as JSON stored it (lists) back as the walk's tuples."""
    if value is None:
        return None
    return tuple(tuple(part) if isinstance(part, list) else part for part in value)
