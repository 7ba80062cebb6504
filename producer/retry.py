"""Enqueue a job's failed tiles again (``tileclass retry``), once their files or the host were fixed.

The tiles come from the job's failure list (``core.queries.failures``: optionally only those whose reason contains
a text), read in pages of ``PAGE`` rows by id, each page in its own short read, so the producer never holds a
transaction that workers' writes would wait on. They go out as new batches of the same job through the one
publishing pass (``producer.pipeline.in_batches`` + ``producer.publication.Publication``, with its stop and error
handling), in batches of one zoom.

Accounting (``core.jobs``). Each retry batch's row is written with ``retried`` = its tiles before the batch is
published: those tiles were counted as failed by the batches that failed them, so while they wait they count as
pending instead, and once a worker is done with them as whatever they became. A tile that succeeds leaves the
failure list (the worker's result removes its failure row); one that fails again stays on it with one more attempt.

States. Only a classify job whose batches are all done can be retried (queued or completed): a batch still waiting
may yet fail tiles. The job goes back to ``enqueuing`` in phase ``retry`` while its failures are published, then to
``queued`` until the retry batches finish, then ``completed``. A retry that was stopped (the job still ``enqueuing``
in phase ``retry``) can be run again: its unfinished batches are superseded and every tile still failed is sent
again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from celery import Celery
from sqlalchemy.orm import Session

from core import job_passes, jobs
from core.db import session_scope
from core.errors import TileclassError
from core.job_states import JobInfo, JobKind, JobPhase, JobState
from core.models.lookups import is_registered
from core.queries.failures import count_job_failures, failed_page
from core.sources import source_from_record
from core.sources.base import Chunk
from core.tiles import Tile
from producer.pipeline import DEFAULT_BATCH_SIZE, PassStats, Target, in_batches
from producer.publication import Publication

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
    if not is_registered(session, model_hash=job.model_hash):
        raise CannotRetry(f"job {job_id}'s model {job.model_hash[:12]} is no longer registered")
    largest = job_passes.largest_batch(session, job_id=job_id)
    target = Target(source_from_record(job.source), None, job.model_hash,
                    batch_size or largest or DEFAULT_BATCH_SIZE)
    return RetryPlan(job_id, target, reason or None, count_job_failures(session, job_id=job_id, reason=reason),
                     count_job_failures(session, job_id=job_id))


def _interrupted(job: JobInfo) -> bool:
    return jobs.stage(job) == (JobState.ENQUEUING, JobPhase.RETRY)


def _check_retryable(session: Session, job: JobInfo) -> None:
    """``CannotRetry`` saying what to do instead where ``core.jobs.TRANSITIONS`` has no retry for the job, or while
    batches of it may still fail tiles."""
    if job.kind != JobKind.CLASSIFY:
        raise CannotRetry(f"job {job.id} is a {job.kind} job: only classify jobs have tiles to retry")
    if job.model_hash is None or not job.source:
        raise CannotRetry(f"job {job.id} records no model or no tile source: enqueue it again instead")
    if _interrupted(job):
        return
    if job.state not in (JobState.QUEUED, JobState.COMPLETED):
        raise CannotRetry(f"job {job.id} is {job.state}: only queued or completed jobs can be retried")
    waiting = job_passes.waiting_batches(session, job_id=job.id)
    if waiting:
        raise CannotRetry(f"job {job.id} still has {waiting:,} batch{'es' if waiting != 1 else ''} not done, which "
                          f"may fail more tiles: retry once they finish ('tileclass status {job.id} --watch'), or "
                          f"'tileclass resume {job.id}' first if the broker lost them")


def retry_failures(plan: RetryPlan, *, app: Celery, max_queued: int,
                   on_progress: Callable[[PassStats], None] | None = None,
                   stop: threading.Event | None = None) -> RetryOutcome:
    """Claim the job, then publish its (matching) failed tiles as new batches of it; returns what was sent. Raises
    ``Interrupted`` or ``BrokerUnavailable`` (after recording) as ``enqueue`` does."""
    with session_scope() as session:
        before = jobs.get_job(session, plan.job_id)
        _check_retryable(session, before)  # again, inside the transaction that claims the job
        superseded = job_passes.supersede_unfinished_batches(session, job_id=before.id) \
            if _interrupted(before) else 0
        job = jobs.begin_pass(session, job_id=before.id, phase=JobPhase.RETRY, message=RETRYING_NOTE)
    stats = PassStats()
    publication = Publication(plan.target, job, stats, adds_skipped=False, retries=True)
    pages = _failed_pages(plan, stats, on_progress)
    publication.run(in_batches(pages, plan.target.batch_size), app=app, max_queued=max_queued, stop=stop,
                    on_progress=on_progress)
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
    after = 0
    while True:
        with session_scope(read_only=True) as session:
            rows = failed_page(session, job_id=plan.job_id, reason=plan.reason, model_hash=plan.target.model_hash,
                               source_name=plan.target.source.name, after=after, limit=PAGE)
        if not rows:
            return
        after = rows[-1][0]
        tiles = [tile for _, tile in rows]
        stats.found += len(tiles)
        yield Chunk(key=(), tiles=tiles, column=None, last=False), tiles
        if on_progress is not None:
            on_progress(stats)
