"""Re-enqueue what a job lost: every tile of its region that has neither a result nor a failure recorded by it.

The results database, not the broker, is the source of truth. Redis keeps its queue in memory: restarted without
its append-only file (or flushed), it forgets every batch that was waiting, and the embedded filesystem broker
loses the batch a killed worker was holding. ``resume_job`` walks the job's recorded source and region again,
drops the tiles that have a result for the job's model and those this job already recorded as failed, and
publishes the rest as new batches of the same job, through the same pass as ``enqueue``.

Accounting. First, in one transaction, the job's batches that are not done are marked superseded and the job goes
back to ``enqueuing`` (its note says a resume is running, so that an interrupted resume can be run again): a
superseded batch no longer counts, and if its message was not lost after all, the worker that runs it records
its tiles' results but leaves the batch's row alone. Batch numbers are reserved and recorded as ``enqueue`` does
them (``producer.publication``), so a resume killed at any point leaves no batch the job does not know about.
At the end the totals are summed again and the job is queued, or completed when nothing was missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from celery import Celery
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import jobs
from core.db import session_scope
from core.errors import TileclassError, TileRootError
from core.region import Region
from core.schema import Job, JobBatch, JobKind, JobState, Model
from core.sources import source_from_record
from producer.pipeline import DEFAULT_BATCH_SIZE, PassStats, Target, TileFilter, in_batches, walk_and_filter
from producer.publication import Publication
from producer.publish import Publisher
from producer.retry import RETRYING_NOTE

RESUMING_NOTE = "resume in progress"
RESUMABLE = (JobState.QUEUED, JobState.COMPLETED)


class CannotResume(TileclassError):
    """The job cannot be resumed (wrong kind or state, or its source, region or model is gone)."""


@dataclass
class ResumeOutcome:
    """What one resume found and did: the pass's counts and the unfinished batches it replaced."""

    stats: PassStats
    superseded: int
    state: str


def resume_target(session: Session, *, job_id: int, batch_size: int | None = None) -> Target:
    """Check that ``job_id`` can be resumed and rebuild what it classifies; ``CannotResume`` says why not."""
    job = jobs.get_job(session, job_id)
    _check_resumable(job)
    assert job.model_hash is not None
    if session.get(Model, job.model_hash) is None:
        raise CannotResume(f"job {job_id}'s model {job.model_hash[:12]} is no longer registered")
    largest = session.scalar(select(func.max(JobBatch.tiles)).where(JobBatch.job_id == job_id))
    source = source_from_record(job.source)
    try:
        source.check_readable()
    except TileRootError as exc:
        raise TileRootError(f"job {job_id}'s {exc}") from None
    try:
        region = Region.from_record(job.region)
    except TileclassError as exc:
        raise CannotResume(str(exc)) from None
    return Target(source, region, job.model_hash, batch_size or int(largest or DEFAULT_BATCH_SIZE))


def _check_resumable(job: Job) -> None:
    if job.kind != JobKind.CLASSIFY:
        raise CannotResume(f"job {job.id} is a {job.kind} job: only classify jobs can be resumed")
    if job.model_hash is None or not job.source:
        raise CannotResume(f"job {job.id} records no model or no tile source: enqueue it again instead")
    if job.state == JobState.ENQUEUING and job.message == RETRYING_NOTE:
        raise CannotResume(f"job {job.id}'s failed tiles are being retried (or that retry was stopped): run "
                           f"'tileclass retry {job.id}' again to finish it, then resume it if tiles are missing")
    if job.state == JobState.ENQUEUING and job.message != RESUMING_NOTE:
        raise CannotResume(f"job {job.id} is still being enqueued (or its producer was stopped): run the same "
                           "'tileclass enqueue' command again to continue it, then resume it if tiles are missing")
    if job.state not in (*RESUMABLE, JobState.ENQUEUING):
        raise CannotResume(f"job {job.id} is {job.state}: only queued or completed jobs can be resumed")


def resume_job(job_id: int, target: Target, *, app: Celery, max_queued: int,
               on_progress: Callable[[PassStats], None] | None = None) -> ResumeOutcome:
    """Supersede the job's unfinished batches and publish its missing tiles."""
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        _check_resumable(job)  # again, inside the transaction that claims the job
        superseded = jobs.supersede_unfinished_batches(session, job_id=job_id)
        job.state, job.message, job.finished_at = JobState.ENQUEUING, RESUMING_NOTE, None
        job.resume_after = None  # the whole region is walked again
    stats = PassStats()
    publication = Publication(target, job, stats, adds_skipped=False)
    with app.producer_or_acquire() as producer:
        publisher = Publisher(app, producer, max_queued=max_queued, before_wait=publication.record)
        tiles = walk_and_filter(target, TileFilter(target, failed_of_job=job_id), stats, on_progress=on_progress)
        publication.run(in_batches(tiles, target.batch_size), publisher)
    state = publication.finish(message=f"resumed: {stats.enqueued} missing tile(s) enqueued again")
    assert state is not None
    return ResumeOutcome(stats, superseded, state)
