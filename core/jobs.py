"""Jobs and their batches: the producer creates and fills them, workers finish batches, ``status`` reads them.

A job is complete when its enqueue has finished and every tile it enumerated is classified, failed or empty. Progress is
summed from ``job_batches`` rows (``core.job_progress``), which workers upsert (never increment), so redelivery cannot
double-count.

States. A classify job's ``state`` and ``phase`` (``core.job_states``) move only as ``TRANSITIONS`` says, through
``move``: a move its job's stage does not lead to raises ``IllegalTransition`` and changes nothing. Training runs
move by their lease (``core.leases``, ``worker.training``) and ``set_state``. The phase says which producer pass
publishes an ``enqueuing`` job; it means nothing in another state (and is cleared on the way out).

Retries. ``tileclass retry`` sends a job's failed tiles again in new batches whose rows count them in ``retried``
(written before the batch is published). Those tiles were counted as failed by the batches that failed them, so
each retried tile is taken off the job's total and its failed count once: ``total = sum(tiles - retried)`` and
``failed = sum(failed of done batches) - sum(retried)``, over batches that are not superseded. While a retry batch
waits, its tiles are pending; once done, they count as whatever they became. A retry batch that ``resume``
supersedes stops taking its tiles off, so they count as failed again, as the failure list still says.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.db import upsert_insert
from core.errors import NotFoundError, TileclassError
from core.job_progress import JobProgress, progress_of
from core.job_states import BatchState, JobInfo, JobKind, JobPhase, JobState
from core.schema import MAX_INTEGER, Job, JobBatch, utcnow


class Move(enum.StrEnum):
    """What happens to a classify job (``TRANSITIONS``)."""

    PUBLISH = "finish publishing"  # a pass published its last batch: workers have them all
    COMPLETE = "complete"  # every tile of a queued job is classified, failed or empty
    RESUME = "be resumed"  # ``tileclass resume``: its region walked again for tiles the broker lost
    RETRY = "be retried"  # ``tileclass retry``: its failed tiles sent again
    CANCEL = "be cancelled"  # ``tileclass cancel`` (a training job too)


Stage = tuple[JobState, JobPhase | None]  # a job's state, and its phase while enqueuing
_PUBLISHING = frozenset((JobState.ENQUEUING, phase) for phase in (*JobPhase, None))  # None: a training job
_SETTLED = frozenset({(JobState.QUEUED, None), (JobState.COMPLETED, None)})

# Each move: the stages it leaves from, and the stage it leads to. A job is created enqueuing in phase ``enqueue``
# (a training job without a phase); a pass that was stopped is continued by the same pass only: the same enqueue
# command, or the same resume or retry from its own phase.
TRANSITIONS: dict[Move, tuple[frozenset[Stage], Stage]] = {
    Move.PUBLISH: (_PUBLISHING, (JobState.QUEUED, None)),
    Move.COMPLETE: (frozenset({(JobState.QUEUED, None)}), (JobState.COMPLETED, None)),
    Move.RESUME: (_SETTLED | {(JobState.ENQUEUING, JobPhase.RESUME)}, (JobState.ENQUEUING, JobPhase.RESUME)),
    Move.RETRY: (_SETTLED | {(JobState.ENQUEUING, JobPhase.RETRY)}, (JobState.ENQUEUING, JobPhase.RETRY)),
    Move.CANCEL: (_PUBLISHING | {(JobState.QUEUED, None), (JobState.RUNNING, None)}, (JobState.CANCELLED, None)),
}
FINISHED = (JobState.COMPLETED, JobState.CANCELLED, JobState.FAILED)


class IllegalTransition(TileclassError):
    """A job was asked to move where its stage does not lead (``TRANSITIONS``)."""


def stage(job: Job | JobInfo) -> Stage:
    """A job's state, with its phase while it is enqueuing (in any other state a phase means nothing)."""
    state = JobState(job.state)
    return state, JobPhase(job.phase) if state == JobState.ENQUEUING and job.phase else None


def move(job: Job, to: Move, *, message: str | None = None) -> None:
    """Move ``job`` (its row, in the caller's transaction) by ``to``, with a ``message`` for people if given;
    ``IllegalTransition`` where its stage does not lead there."""
    sources, (state, phase) = TRANSITIONS[to]
    if stage(job) not in sources:
        now = f"{job.state}" + (f" (phase {job.phase})" if job.state == JobState.ENQUEUING and job.phase else "")
        raise IllegalTransition(f"job {job.id} is {now}: it cannot {to.value}")
    job.state, job.phase = state, phase
    job.finished_at = utcnow() if state in FINISHED else None
    if message is not None:
        job.message = message


@dataclass(frozen=True)
class JobBounds:
    """A classify job's bounds, settled at enqueue and read by its workers from its row, so that resume and retry
    keep them: the share of pixels with data below which a tile is empty (None: ``TILECLASS_MIN_COVERAGE``), and
    the confidence below which an answer is flagged uncertain (None: none is)."""

    min_coverage: float | None = None
    uncertain_below: float | None = None

    @classmethod
    def of(cls, job: Job | JobInfo) -> JobBounds:
        return cls(job.min_coverage, job.uncertain_below)


def create_job(session: Session, *, kind: JobKind = JobKind.CLASSIFY, model_hash: str | None = None,
               source: dict[str, Any] | None = None, region: dict[str, Any] | None = None,
               bounds: JobBounds | None = None) -> JobInfo:
    """A new job, ``enqueuing`` (a classify job in phase ``enqueue``); ``source`` and ``region`` are what
    ``core.sources`` and ``core.region`` record."""
    bounds = bounds or JobBounds()
    job = Job(kind=kind, model_hash=model_hash, source=source or {}, region=region or {}, state=JobState.ENQUEUING,
              phase=JobPhase.ENQUEUE if kind == JobKind.CLASSIFY else None,
              min_coverage=bounds.min_coverage, uncertain_below=bounds.uncertain_below)
    session.add(job)
    session.flush()
    return JobInfo.of(job)


def find_unfinished(session: Session, *, model_hash: str, source: dict[str, Any], region: dict[str, Any],
                    bounds: JobBounds | None = None) -> JobInfo | None:
    """The newest classify job still enqueuing or queued for exactly this model, source, region and bounds."""
    candidates = session.scalars(select(Job).where(
        Job.kind == JobKind.CLASSIFY, Job.state.in_([JobState.ENQUEUING, JobState.QUEUED]),
        Job.model_hash == model_hash).order_by(Job.id.desc()))
    return next((JobInfo.of(job) for job in candidates
                 if job.source == source and job.region == region and JobBounds.of(job) == (bounds or JobBounds())),
                None)


MAX_JOB_ID = MAX_INTEGER  # jobs.id is an Integer column (int4 on PostgreSQL)


def check_job_id(job_id: int) -> int:
    """``job_id`` if a job could have it; ``TileclassError`` (a malformed request, not an unknown job) if not, before
    PostgreSQL would refuse it with a ``NumericValueOutOfRange``."""
    if not 1 <= job_id <= MAX_JOB_ID:
        raise TileclassError(f"job {job_id} does not exist: job ids are 1..{MAX_JOB_ID}")
    return job_id


def job_row(session: Session, job_id: int) -> Job:
    """A job's row, for core and the workers to change; ``NotFoundError`` for an unknown job."""
    job = session.get(Job, check_job_id(job_id))
    if job is None:
        latest = session.scalar(select(func.max(Job.id)))
        raise NotFoundError(f"job {job_id} does not exist (job ids run 1..{latest or 0})")
    return job


def get_job(session: Session, job_id: int) -> JobInfo:
    """A job as it is now; ``NotFoundError`` for an unknown job."""
    return JobInfo.of(job_row(session, job_id))


def find_job(session: Session, job_id: int) -> JobInfo | None:
    """A job, or None where there is none with that id."""
    job = session.get(Job, job_id) if 1 <= job_id <= MAX_JOB_ID else None
    return JobInfo.of(job) if job is not None else None


def latest_job_id(session: Session, *, kind: JobKind) -> int | None:
    """The newest job of ``kind``, if there is one."""
    latest = session.scalar(select(Job.id).where(Job.kind == kind).order_by(Job.id.desc()).limit(1))
    return None if latest is None else int(latest)


def record_batches_enqueued(session: Session, *, job_id: int, batches: Sequence[tuple[int, int]],
                            retries: bool = False) -> None:
    """Record already-published ``(seq, tiles)`` batches; a row a fast worker already marked done is kept as is.

    ``retries``: every tile of these batches retries a failure the job counted before (``retried = tiles``).
    """
    if not batches:
        return
    now = utcnow()
    rows = [{"job_id": job_id, "seq": seq, "tiles": tiles, "state": BatchState.QUEUED, "classified": 0,
             "failed": 0, "retried": tiles if retries else 0, "enqueued_at": now} for seq, tiles in batches]
    session.execute(upsert_insert(session, JobBatch).values(rows).on_conflict_do_nothing(
        index_elements=["job_id", "seq"]))


def record_batch_done(session: Session, *, job_id: int, seq: int, tiles: int, classified: int, failed: int,
                      empty: int = 0, uncertain: int = 0) -> None:
    """Mark a batch done with its counts (``uncertain``: of ``classified``) (an upsert: a redelivered batch
    overwrites its own row; a superseded one is left as it is)."""
    values = {"job_id": job_id, "seq": seq, "tiles": tiles, "state": BatchState.DONE, "classified": classified,
              "failed": failed, "empty": empty, "uncertain": uncertain, "enqueued_at": utcnow(),
              "finished_at": utcnow()}
    stmt = upsert_insert(session, JobBatch).values(values)
    session.execute(stmt.on_conflict_do_update(
        index_elements=["job_id", "seq"],
        set_={k: stmt.excluded[k] for k in ("state", "classified", "failed", "empty", "uncertain", "finished_at")},
        where=JobBatch.__table__.c.state != BatchState.CANCELLED,  # superseded: its tiles count in other batches
    ))


def finish_enqueue(session: Session, *, job_id: int, total_tiles: int, total_batches: int, skipped: int,
                   message: str | None = None) -> None:
    """The producer has enumerated the whole region: fix the totals and let completion be detected. A job that is
    no longer enqueuing (cancelled meanwhile, or finished by another producer) keeps its state."""
    job = job_row(session, job_id)
    job.total_tiles, job.total_batches, job.skipped_tiles = total_tiles, total_batches, skipped
    if message is not None:
        job.message = message
    if job.state == JobState.ENQUEUING:
        move(job, Move.PUBLISH)
    refresh_state(session, job_id=job_id)


def begin_pass(session: Session, *, job_id: int, phase: JobPhase, message: str) -> JobInfo:
    """Claim a settled classify job for a resume or a retry (or continue that same pass, stopped): it goes back to
    ``enqueuing`` in ``phase`` (a resume walks the whole region again); ``IllegalTransition`` otherwise."""
    job = job_row(session, job_id)
    move(job, {JobPhase.RESUME: Move.RESUME, JobPhase.RETRY: Move.RETRY}[phase], message=message)
    if phase == JobPhase.RESUME:
        job.resume_after = None
    return JobInfo.of(job)


def cancel(session: Session, *, job_ids: Sequence[int]) -> list[JobInfo]:
    """Cancel jobs (each id once, in order; every one exists, or ``NotFoundError``): a job already cancelled stays
    so; one that has finished makes ``IllegalTransition`` naming each such job, and nothing is cancelled. Returns
    the jobs as they were before."""
    chosen = [job_row(session, job_id) for job_id in dict.fromkeys(job_ids)]
    done = [job for job in chosen if job.state in (JobState.COMPLETED, JobState.FAILED)]
    if done:
        listed = ", ".join(f"job {job.id} is {job.state}" for job in done)
        raise IllegalTransition(f"{listed}: only jobs that are still enqueuing, queued or running can be cancelled")
    before = [JobInfo.of(job) for job in chosen]
    for job in chosen:
        if job.state != JobState.CANCELLED:
            move(job, Move.CANCEL, message="cancelled by the user")
    return before


def is_cancelled(session: Session, *, job_id: int) -> bool:
    return session.scalar(select(Job.state).where(Job.id == job_id)) == JobState.CANCELLED


def progress(session: Session, *, job_id: int) -> JobProgress:
    return progress_of(session, chosen=[job_row(session, job_id)])[0]


def refresh_state(session: Session, *, job_id: int) -> str:
    """Mark a queued job completed once every enumerated tile is classified, failed or empty; returns the state."""
    job = job_row(session, job_id)
    if job.state == JobState.QUEUED and job.kind == JobKind.CLASSIFY:
        current = progress(session, job_id=job_id)
        if current.classified + current.failed + current.empty >= job.total_tiles:
            move(job, Move.COMPLETE)
    return job.state


def set_state(session: Session, *, job_ids: Sequence[int], state: JobState, message: str | None = None) -> None:
    """Set jobs' state as a training run moves (``core.leases``, ``worker.training``); the phase is cleared."""
    values: dict[str, Any] = {"state": state, "phase": None, "updated_at": utcnow()}
    if state in FINISHED:
        values["finished_at"] = utcnow()
    if message is not None:
        values["message"] = message
    session.execute(update(Job).where(Job.id.in_(job_ids)).values(values))
