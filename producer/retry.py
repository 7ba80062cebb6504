"""Enqueue a job's failed tiles again (``tileclass retry``), once their files or the host were fixed.

The tiles come from the job's failure list (``core.queries.failures``: optionally only those whose reason contains
a text), read in pages of ``PAGE`` rows by id, each page in its own short read, so the producer never holds a
transaction that workers' writes would wait on. They go out as new batches of the same job through the one
publishing pass (``producer.pipeline.in_batches`` + ``producer.publication.Publication``), in batches of one zoom.

Accounting (``core.jobs``). Each retry batch's row is written with ``retried`` = its tiles before the batch is
published: those tiles were counted as failed by the batches that failed them, so while they wait they count as
pending instead, and once a worker is done with them as whatever they became. A tile that succeeds leaves the
failure list (the worker's result removes its failure row); one that fails again stays on it with one more attempt.

States. Only a classify job whose batches are all done can be retried (queued or completed): a batch still waiting
may yet fail tiles. The job goes back to ``enqueuing`` with a note while its failures are published, then to
``queued`` until the retry batches finish, then ``completed``. A retry that was interrupted (the note is still
there) can be run again: its unfinished batches are superseded and every tile still failed is sent again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from celery import Celery
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import jobs
from core.db import session_scope
from core.errors import TileclassError
from core.queries.failures import job_failure_conditions
from core.schema import BatchState, FailedTile, Job, JobBatch, JobKind, JobState, Model
from core.sources import source_from_record
from core.tiles import Tile
from core.walk import Chunk
from producer.pipeline import DEFAULT_BATCH_SIZE, PassStats, Target, in_batches
from producer.publication import Publication
from producer.publish import Publisher

RETRYING_NOTE = "retry in progress"
PAGE = 4096


class CannotRetry(TileclassError):
    """The job cannot be retried now (its kind or state, batches still running, its model gone)."""


@dataclass(frozen=True)
class RetryPlan:
    """What a retry sends: the job's model and source, and how many failures match."""

    job_id: int
    target: Target
    reason: str | None
    matching: int  # failures of the job whose reason contains ``reason``
    failed: int  # all failures of the job


@dataclass
class RetryOutcome:
    stats: PassStats
    superseded: int  # unfinished batches of an interrupted retry, replaced
    state: str


def plan_retry(session: Session, *, job_id: int, reason: str | None = None,
               batch_size: int | None = None) -> RetryPlan:
    """Check that ``job_id`` can be retried and count the failures to send; ``CannotRetry`` says why not."""
    job = jobs.get_job(session, job_id)
    _check_retryable(session, job)
    assert job.model_hash is not None
    if session.get(Model, job.model_hash) is None:
        raise CannotRetry(f"job {job_id}'s model {job.model_hash[:12]} is no longer registered")
    largest = session.scalar(select(func.max(JobBatch.tiles)).where(JobBatch.job_id == job_id))
    target = Target(source_from_record(job.source), None, job.model_hash,
                    batch_size or int(largest or DEFAULT_BATCH_SIZE))
    return RetryPlan(job_id, target, reason or None, _count(session, job_id, reason), _count(session, job_id, None))


def _count(session: Session, job_id: int, reason: str | None) -> int:
    conditions = job_failure_conditions(job_id=job_id, reason=reason)
    return int(session.scalar(select(func.count()).select_from(FailedTile).where(*conditions)) or 0)


def _interrupted(job: Job) -> bool:
    return job.state == JobState.ENQUEUING and job.message == RETRYING_NOTE


def _check_retryable(session: Session, job: Job) -> None:
    if job.kind != JobKind.CLASSIFY:
        raise CannotRetry(f"job {job.id} is a {job.kind} job: only classify jobs have tiles to retry")
    if job.model_hash is None or not job.source:
        raise CannotRetry(f"job {job.id} records no model or no tile source: enqueue it again instead")
    if _interrupted(job):
        return
    if job.state not in (JobState.QUEUED, JobState.COMPLETED):
        raise CannotRetry(f"job {job.id} is {job.state}: only queued or completed jobs can be retried")
    waiting = int(session.scalar(select(func.count()).select_from(JobBatch).where(
        JobBatch.job_id == job.id, JobBatch.state == BatchState.QUEUED)) or 0)
    if waiting:
        raise CannotRetry(f"job {job.id} still has {waiting:,} batch{'es' if waiting != 1 else ''} not done, which "
                          f"may fail more tiles: retry once they finish ('tileclass status {job.id} --watch'), or "
                          f"'tileclass resume {job.id}' first if the broker lost them")


def retry_failures(plan: RetryPlan, *, app: Celery, max_queued: int,
                   on_progress: Callable[[PassStats], None] | None = None) -> RetryOutcome:
    """Claim the job, then publish its (matching) failed tiles as new batches of it; returns what was sent."""
    with session_scope() as session:
        job = jobs.get_job(session, plan.job_id)
        _check_retryable(session, job)  # again, inside the transaction that claims the job
        superseded = jobs.supersede_unfinished_batches(session, job_id=job.id) if _interrupted(job) else 0
        job.state, job.message, job.finished_at = JobState.ENQUEUING, RETRYING_NOTE, None
    stats = PassStats()
    publication = Publication(plan.target, job, stats, adds_skipped=False, retries=True)
    with app.producer_or_acquire() as producer:
        publisher = Publisher(app, producer, max_queued=max_queued, before_wait=publication.record)
        pages = _failed_pages(plan, stats, on_progress)
        publication.run(in_batches(pages, plan.target.batch_size), publisher)
    which = f" whose reason contains {plan.reason!r}" if plan.reason else ""
    state = publication.finish(message=f"retried: {stats.enqueued:,} failed tile(s){which} enqueued again")
    assert state is not None
    return RetryOutcome(stats, superseded, state)


def _failed_pages(plan: RetryPlan, stats: PassStats,
                  on_progress: Callable[[PassStats], None] | None) -> Iterator[tuple[Chunk, list[Tile]]]:
    """The failed tiles in pages by id, as the walk's chunks (no directory: the resume position never moves).

    A page is read in its own transaction; rows that later pages would have shown but that a worker removed in
    between (a retried tile classified already) are simply not sent again.
    """
    conditions = [*job_failure_conditions(job_id=plan.job_id, reason=plan.reason),
                  FailedTile.model_hash == plan.target.model_hash, FailedTile.root_name == plan.target.source.name]
    after = 0
    while True:
        with session_scope(read_only=True) as session:
            rows = session.execute(select(FailedTile.id, FailedTile.z, FailedTile.x, FailedTile.y, FailedTile.path)
                                   .where(*conditions, FailedTile.id > after).order_by(FailedTile.id)
                                   .limit(PAGE)).all()
        if not rows:
            return
        after = rows[-1][0]
        tiles = [Tile(z, x, y, path) for _, z, x, y, path in rows]
        stats.found += len(tiles)
        yield Chunk(key=(), tiles=tiles, column=None, last=False), tiles
        if on_progress is not None:
            on_progress(stats)
