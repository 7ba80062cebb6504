"""Re-enqueue what a job lost: every tile of its region that has neither a result nor a failure recorded by it.

The results database, not the broker, is the source of truth. Redis keeps its queue in memory: restarted without
its append-only file (or flushed), it forgets every batch that was waiting, and the embedded filesystem broker
loses the batch a killed worker was holding. ``resume_job`` walks the job's recorded root, layout and region
again, drops the tiles that have a result for the job's model and those this job already recorded as failed
(they were tried, with bounded attempts), and publishes the rest as new batches of the same job.

Accounting. First, in one transaction, the job's batches that are not done are marked superseded and the job goes
back to ``enqueuing`` (its note says a resume is running, so that an interrupted resume can be run again): a
superseded batch no longer counts, and if its message was not lost after all, the worker that runs it records
its tiles' results but leaves the batch's row alone. Each new batch's row is written before its message is sent,
so a resume killed at any point leaves no batch the job does not know about. At the end the totals are summed
again and the job is queued, or completed when nothing was missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import func, select

from core import jobs
from core.db import get_engine, session_scope
from core.errors import TileclassError, TileRootError
from core.layouts import PLAIN, Layout
from core.queue import ClassifyBatch, TileRow
from core.region import Region, load_geojson
from core.schema import FailedTile, Job, JobBatch, JobKind, JobState, Model
from core.walk import WalkReport, walk
from producer.classified import ClassifiedFilter
from producer.enqueue import DEFAULT_BATCH_SIZE
from producer.publish import Publisher

RESUMING_NOTE = "resume in progress"
RESUMABLE = (JobState.QUEUED, JobState.COMPLETED)


class CannotResume(TileclassError):
    """The job cannot be resumed (wrong kind or state, or its root, layout, region or model is gone)."""


@dataclass
class ResumeStats:
    """What one resume found and did."""

    found: int = 0  # tiles of the region the walk found
    classified: int = 0  # of those, with a result for the model
    failed: int = 0  # of those, recorded as failed by this job (not retried)
    enqueued: int = 0
    batches: int = 0
    superseded: int = 0  # unfinished batches whose tiles were re-enqueued instead
    report: WalkReport = field(default_factory=WalkReport)


@dataclass(frozen=True)
class ResumePlan:
    """Where a job's tiles are and what it classifies them with, rebuilt from its record."""

    job_id: int
    model_hash: str
    root: Path
    root_name: str
    layout: Layout
    region: Region | None
    batch_size: int


def plan_resume(job_id: int, *, batch_size: int | None = None) -> ResumePlan:
    """Check that ``job_id`` can be resumed and rebuild its walk; ``CannotResume`` says why not."""
    with session_scope(read_only=True) as session:
        job = jobs.get_job(session, job_id)
        _check_resumable(job)
        assert job.model_hash is not None and job.root_path is not None and job.root_name is not None
        if session.get(Model, job.model_hash) is None:
            raise CannotResume(f"job {job_id}'s model {job.model_hash[:12]} is no longer registered")
        largest = session.scalar(select(func.max(JobBatch.tiles)).where(JobBatch.job_id == job_id))
        root = Path(job.root_path)
        if not root.is_dir():
            raise TileRootError(f"job {job_id}'s tile root {job.root_path!r} is not a directory on this host")
        return ResumePlan(job_id, job.model_hash, root, job.root_name, layout_from_record(job.layout or PLAIN),
                          region_from_record(job.region), batch_size or int(largest or DEFAULT_BATCH_SIZE))


def _check_resumable(job: Job) -> None:
    if job.kind != JobKind.CLASSIFY or job.model_hash is None or job.root_path is None:
        raise CannotResume(f"job {job.id} is a {job.kind} job: only classify jobs can be resumed")
    if job.state == JobState.ENQUEUING and job.message != RESUMING_NOTE:
        raise CannotResume(f"job {job.id} is still being enqueued (or its producer was stopped): run the same "
                           "'tileclass enqueue' command again to continue it, then resume it if tiles are missing")
    if job.state not in (*RESUMABLE, JobState.ENQUEUING):
        raise CannotResume(f"job {job.id} is {job.state}: only queued or completed jobs can be resumed")


def layout_from_record(name: str) -> Layout:
    """The layout a job recorded as ``plain`` or ``<scheme>:<template>`` (``Layout.name``)."""
    if name == PLAIN:
        return Layout.parse(PLAIN)
    scheme, _, template = name.partition(":")
    return Layout.parse(template, scheme)


def region_from_record(record: dict[str, Any]) -> Region | None:
    """The region a job recorded (``Region.describe()``); its GeoJSON file must still hold the same polygon."""
    zooms, bbox, geojson = record.get("zooms"), record.get("bbox"), record.get("geojson")
    if not (zooms or bbox or geojson):
        return None
    area = None
    if geojson:
        area = load_geojson(Path(geojson["path"]))
        if area.sha256 != geojson.get("sha256"):
            raise CannotResume(f"the GeoJSON file {geojson['path']!r} changed since the job was enqueued: the "
                               "region is no longer known; enqueue a new job")
    return Region(zooms=zooms, bbox=tuple(bbox) if bbox else None, area=area)


def resume_job(plan: ResumePlan, *, app: Celery, max_queued: int,
               on_progress: Callable[[ResumeStats], None] | None = None) -> tuple[ResumeStats, str]:
    """Supersede the job's unfinished batches and publish its missing tiles; returns the stats and the new state."""
    stats = ResumeStats()
    with session_scope() as session:
        job = jobs.get_job(session, plan.job_id)
        _check_resumable(job)  # again, inside the transaction that claims the job
        stats.superseded = jobs.supersede_unfinished_batches(session, job_id=plan.job_id)
        job.state, job.message, job.finished_at = JobState.ENQUEUING, RESUMING_NOTE, None
    next_seq = _next_seq(plan.job_id)
    with app.producer_or_acquire() as producer:
        publisher = Publisher(app, producer, max_queued=max_queued, before_wait=lambda: None)
        for tiles in _batches(plan, stats, on_progress):
            _record_ahead(plan.job_id, next_seq, len(tiles))
            publisher.send(ClassifyBatch(plan.job_id, next_seq, plan.model_hash, plan.root_name, tiles))
            next_seq += 1
            stats.enqueued += len(tiles)
            stats.batches += 1
    with session_scope() as session:
        total_tiles, total_batches = jobs.batch_totals(session, job_id=plan.job_id)
        job = jobs.get_job(session, plan.job_id)
        job.message = f"resumed: {stats.enqueued} missing tile(s) enqueued again"
        jobs.finish_enqueue(session, job_id=plan.job_id, total_tiles=total_tiles, total_batches=total_batches,
                            skipped=job.skipped_tiles)
        return stats, jobs.get_job(session, plan.job_id).state


def _next_seq(job_id: int) -> int:
    with session_scope() as session:
        return jobs.next_batch_seq(session, job_id=job_id)


def _record_ahead(job_id: int, seq: int, tiles: int) -> None:
    """The batch's row goes in before its message goes out: nothing published is ever unknown to the job."""
    with session_scope() as session:
        jobs.record_batches_enqueued(session, job_id=job_id, batches=[(seq, tiles)])


def _batches(plan: ResumePlan, stats: ResumeStats,
             on_progress: Callable[[ResumeStats], None] | None) -> Iterator[list[TileRow]]:
    """The missing tiles in batches of one zoom and at most ``plan.batch_size`` tiles, counting as it goes."""
    classified = ClassifiedFilter(get_engine(), model_hash=plan.model_hash, root_name=plan.root_name,
                                  region=plan.region)
    failed = _failed_paths(plan)
    pending: list[TileRow] = []
    for chunk in walk(plan.root, plan.layout, plan.region, report=stats.report):
        kept = classified.unclassified(chunk)
        missing = [row for row in kept if row[3] not in failed]
        stats.found += len(chunk.tiles)
        stats.classified += len(chunk.tiles) - len(kept)
        stats.failed += len(kept) - len(missing)
        for row in missing:
            if pending and (len(pending) >= plan.batch_size or pending[0][0] != row[0]):
                yield pending
                pending = []
            pending.append(row)
        if on_progress is not None:
            on_progress(stats)
    if pending:
        yield pending


def _failed_paths(plan: ResumePlan) -> set[str]:
    with session_scope(read_only=True) as session:
        return set(session.scalars(select(FailedTile.path).where(
            FailedTile.model_hash == plan.model_hash, FailedTile.job_id == plan.job_id,
            FailedTile.root_name == plan.root_name)))
