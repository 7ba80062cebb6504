"""Re-enqueue what a job lost: every tile of its region that has neither a result nor a failure recorded by it.

The results database, not the broker, is the source of truth. Redis keeps its queue in memory: restarted without
its append-only file (or flushed), it forgets every batch that was waiting, and the embedded filesystem broker
loses the batch a killed worker was holding. ``resume_job`` walks the job's recorded source and region again,
drops the tiles that have a result for the job's model and those this job already recorded as failed, and
publishes the rest as new batches of the same job, through the same pass as ``enqueue`` (with its stop and error
handling: ``producer.publication``).

Accounting. First, in one transaction, the job's batches that are not done are marked superseded and the job goes
back to ``enqueuing`` in phase ``resume`` (``core.jobs``), so that a resume that was stopped can be run again: a
superseded batch no longer counts, and if its message was not lost after all, the worker that runs it records
its tiles' results but leaves the batch's row alone. Batch numbers are reserved and recorded as ``enqueue`` does
them (``producer.publication``), so a resume stopped at any point leaves no batch the job does not know about.
At the end the totals are summed again and the job is queued, or completed when nothing was missing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from celery import Celery
from sqlalchemy.orm import Session

from core import job_passes, jobs
from core.db import session_scope
from core.errors import TileclassError
from core.job_states import JobInfo, JobKind, JobPhase, JobState
from core.models.lookups import is_registered
from core.region import Region
from core.sources import source_from_record
from core.sources.base import SourceError
from producer.pipeline import DEFAULT_BATCH_SIZE, PassStats, Target, TileFilter, in_batches, walk_and_filter
from producer.publication import Publication

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
    if not is_registered(session, model_hash=job.model_hash):
        raise CannotResume(f"job {job_id}'s model {job.model_hash[:12]} is no longer registered")
    largest = job_passes.largest_batch(session, job_id=job_id)
    source = source_from_record(job.source)
    try:
        source.check_readable()
    except SourceError as exc:
        raise SourceError(f"job {job_id}'s {exc}") from None
    try:
        region = Region.from_record(job.region)
    except TileclassError as exc:
        raise CannotResume(str(exc)) from None
    return Target(source, region, job.model_hash, batch_size or largest or DEFAULT_BATCH_SIZE)


def _check_resumable(job: JobInfo) -> None:
    """``CannotResume`` saying what to do instead where ``core.jobs.TRANSITIONS`` has no resume for the job."""
    if job.kind != JobKind.CLASSIFY:
        raise CannotResume(f"job {job.id} is a {job.kind} job: only classify jobs can be resumed")
    if job.model_hash is None or not job.source:
        raise CannotResume(f"job {job.id} records no model or no tile source: enqueue it again instead")
    if job.state == JobState.ENQUEUING and job.phase == JobPhase.RETRY:
        raise CannotResume(f"job {job.id}'s failed tiles are being retried (or that retry was stopped): run "
                           f"'tileclass retry {job.id}' again to finish it, then resume it if tiles are missing")
    if job.state == JobState.ENQUEUING and job.phase != JobPhase.RESUME:
        raise CannotResume(f"job {job.id} is still being enqueued (or its producer was stopped): run the same "
                           "'tileclass enqueue' command again to continue it, then resume it if tiles are missing")
    if job.state not in (*RESUMABLE, JobState.ENQUEUING):
        raise CannotResume(f"job {job.id} is {job.state}: only queued or completed jobs can be resumed")


def resume_job(job_id: int, target: Target, *, app: Celery, max_queued: int,
               on_progress: Callable[[PassStats], None] | None = None,
               stop: threading.Event | None = None) -> ResumeOutcome:
    """Supersede the job's unfinished batches and publish its missing tiles; raises ``Interrupted`` or
    ``BrokerUnavailable`` (after recording) as ``enqueue`` does."""
    with session_scope() as session:
        _check_resumable(jobs.get_job(session, job_id))  # again, inside the transaction that claims the job
        superseded = job_passes.supersede_unfinished_batches(session, job_id=job_id)
        job = jobs.begin_pass(session, job_id=job_id, phase=JobPhase.RESUME, message=RESUMING_NOTE)
    stats = PassStats()
    publication = Publication(target, job, stats, adds_skipped=False)
    tiles = walk_and_filter(target, TileFilter(target, failed_of_job=job_id), stats, on_progress=on_progress,
                            stop=stop)
    publication.run(in_batches(tiles, target.batch_size), app=app, max_queued=max_queued, stop=stop,
                    on_progress=on_progress)
    state = publication.finish(message=f"resumed: {stats.enqueued} missing tile(s) enqueued again")
    assert state is not None
    return ResumeOutcome(stats, superseded, state)
