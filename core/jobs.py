"""Jobs and their batches: the producer creates and fills them, workers finish batches, ``status`` reads them.

A job is complete when its enqueue has finished and every tile it enumerated is classified, failed or empty. Progress is
summed from ``job_batches`` rows, which workers upsert (never increment), so redelivery cannot double-count.

Retries. ``tileclass retry`` sends a job's failed tiles again in new batches whose rows count them in ``retried``
(written before the batch is published). Those tiles were counted as failed by the batches that failed them, so
each retried tile is taken off the job's total and its failed count once: ``total = sum(tiles - retried)`` and
``failed = sum(failed of done batches) - sum(retried)``, over batches that are not superseded. While a retry batch
waits, its tiles are pending; once done, they count as whatever they became. A retry batch that ``resume``
supersedes stops taking its tiles off, so they count as failed again, as the failure list still says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.db import upsert_insert
from core.errors import NotFoundError, TileclassError
from core.schema import MAX_INTEGER, BatchState, Job, JobBatch, JobKind, JobState, utcnow


@dataclass(frozen=True)
class JobProgress:
    job_id: int
    kind: str
    state: str
    total: int
    classified: int
    failed: int
    batches_total: int
    batches_done: int
    tiles_per_second: float  # over the last minute
    empty: int = 0  # nothing to classify there (no tile at the server, transparent, nodata)
    uncertain: int = 0  # of ``classified``: less confident than the job's ``uncertain_below``

    @property
    def pending(self) -> int:
        return max(self.total - self.classified - self.failed - self.empty, 0)

    @property
    def eta_seconds(self) -> float | None:
        if self.pending == 0:
            return 0.0
        return self.pending / self.tiles_per_second if self.tiles_per_second > 0 else None


@dataclass(frozen=True)
class JobBounds:
    """A classify job's bounds, settled at enqueue and read by its workers from its row, so that resume and retry
    keep them: the share of pixels with data below which a tile is empty (None: ``TILECLASS_MIN_COVERAGE``), and
    the confidence below which an answer is flagged uncertain (None: none is)."""

    min_coverage: float | None = None
    uncertain_below: float | None = None

    @classmethod
    def of(cls, job: Job) -> JobBounds:
        return cls(job.min_coverage, job.uncertain_below)


def create_job(session: Session, *, kind: JobKind = JobKind.CLASSIFY, model_hash: str | None = None,
               source: dict[str, Any] | None = None, region: dict[str, Any] | None = None,
               bounds: JobBounds | None = None) -> Job:
    """A new job in state ``enqueuing``; ``source`` and ``region`` are what ``core.sources`` and ``core.region``
    record."""
    bounds = bounds or JobBounds()
    job = Job(kind=kind, model_hash=model_hash, source=source or {}, region=region or {}, state=JobState.ENQUEUING,
              min_coverage=bounds.min_coverage, uncertain_below=bounds.uncertain_below)
    session.add(job)
    session.flush()
    return job


def find_unfinished(session: Session, *, model_hash: str, source: dict[str, Any], region: dict[str, Any],
                    bounds: JobBounds | None = None) -> Job | None:
    """The newest classify job still enqueuing or queued for exactly this model, source, region and bounds."""
    candidates = session.scalars(select(Job).where(
        Job.kind == JobKind.CLASSIFY, Job.state.in_([JobState.ENQUEUING, JobState.QUEUED]),
        Job.model_hash == model_hash).order_by(Job.id.desc()))
    return next((job for job in candidates
                 if job.source == source and job.region == region and JobBounds.of(job) == (bounds or JobBounds())),
                None)


MAX_JOB_ID = MAX_INTEGER  # jobs.id is an Integer column (int4 on PostgreSQL)


def check_job_id(job_id: int) -> int:
    """``job_id`` if a job could have it; ``TileclassError`` (a malformed request, not an unknown job) if not, before
    PostgreSQL would refuse it with a ``NumericValueOutOfRange``."""
    if not 1 <= job_id <= MAX_JOB_ID:
        raise TileclassError(f"job {job_id} does not exist: job ids are 1..{MAX_JOB_ID}")
    return job_id


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, check_job_id(job_id))
    if job is None:
        latest = session.scalar(select(func.max(Job.id)))
        raise NotFoundError(f"job {job_id} does not exist (job ids run 1..{latest or 0})")
    return job


def next_batch_seq(session: Session, *, job_id: int) -> int:
    """The sequence number for a job's next batch (continues after a resumed or re-run enqueue)."""
    last = session.scalar(select(func.max(JobBatch.seq)).where(JobBatch.job_id == job_id))
    return 0 if last is None else int(last) + 1


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


def record_progress(session: Session, *, job_id: int, batches: Sequence[tuple[int, int]], resume_after: Any,
                    seq_reserved: int, seq_recorded: int, skipped: int, retries: bool = False) -> None:
    """The producer's bookkeeping in one transaction: published ``(seq, tiles)`` batches (``retries``: batches of
    retried failures), the walk position up to which everything is recorded, the batch numbers handed out and
    recorded, and the running totals."""
    record_batches_enqueued(session, job_id=job_id, batches=batches, retries=retries)
    job = get_job(session, job_id)
    job.total_tiles, job.total_batches = batch_totals(session, job_id=job_id)
    job.skipped_tiles = skipped
    job.resume_after = None if resume_after is None else list(resume_after)
    job.seq_reserved, job.seq_recorded = seq_reserved, seq_recorded


def batch_totals(session: Session, *, job_id: int) -> tuple[int, int]:
    """``(tiles, batches)`` over every batch row of a job, including rows workers wrote for unrecorded batches,
    but not batches that ``supersede_unfinished_batches`` replaced; a retried tile counts once."""
    tiles, batches = session.execute(
        select(func.coalesce(func.sum(JobBatch.tiles - JobBatch.retried), 0), func.count()).where(
            JobBatch.job_id == job_id, JobBatch.state != BatchState.CANCELLED)
    ).one()
    return int(tiles), int(batches)


def supersede_unfinished_batches(session: Session, *, job_id: int) -> int:
    """Mark a job's batches that are not done as replaced (``tileclass resume`` re-enqueues their tiles).

    Such a batch no longer counts towards the job's totals, and a worker that still runs it later (it was not lost
    after all) records its results but leaves its row alone, so no tile is counted twice. Returns how many.
    """
    result = session.execute(update(JobBatch).where(JobBatch.job_id == job_id, JobBatch.state == BatchState.QUEUED)
                             .values(state=BatchState.CANCELLED))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def supersede_batches(session: Session, *, job_id: int, seqs: Sequence[int]) -> None:
    """Mark batch numbers as replaced whatever their state, creating rows for numbers never recorded.

    A producer killed between publishing a batch and recording it leaves a batch in the broker that its rerun
    publishes again under a new number; the old number is superseded so that its tiles count once.
    """
    if not seqs:
        return
    rows = [{"job_id": job_id, "seq": seq, "tiles": 0, "state": BatchState.CANCELLED, "classified": 0, "failed": 0,
             "enqueued_at": utcnow()} for seq in sorted(seqs)]
    stmt = upsert_insert(session, JobBatch).values(rows)
    session.execute(stmt.on_conflict_do_update(index_elements=["job_id", "seq"],
                                               set_={"state": BatchState.CANCELLED}))


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


def finish_enqueue(session: Session, *, job_id: int, total_tiles: int, total_batches: int, skipped: int) -> None:
    """The producer has enumerated the whole region: fix the totals and let completion be detected."""
    job = get_job(session, job_id)
    job.total_tiles, job.total_batches, job.skipped_tiles = total_tiles, total_batches, skipped
    if job.state == JobState.ENQUEUING:
        job.state = JobState.QUEUED
    refresh_state(session, job_id=job_id)


def is_cancelled(session: Session, *, job_id: int) -> bool:
    return session.scalar(select(Job.state).where(Job.id == job_id)) == JobState.CANCELLED


def progress(session: Session, *, job_id: int) -> JobProgress:
    return progress_of(session, chosen=[get_job(session, job_id)])[0]


def progress_of(session: Session, *, chosen: Sequence[Job]) -> list[JobProgress]:
    """The progress of each of ``chosen``, in their order, from one grouped query over their batches."""
    done, counted = JobBatch.state == BatchState.DONE, JobBatch.state != BatchState.CANCELLED
    since = utcnow() - timedelta(minutes=1)
    rows = session.execute(
        select(
            JobBatch.job_id,
            func.coalesce(func.sum(JobBatch.classified).filter(done), 0),
            # Failures tried again by a retry batch count as pending, then as what they became (module doc).
            func.coalesce(func.sum(JobBatch.failed).filter(done), 0)
            - func.coalesce(func.sum(JobBatch.retried).filter(counted), 0),
            func.coalesce(func.sum(JobBatch.empty).filter(done), 0),
            func.count().filter(counted),
            func.count().filter(done),
            func.coalesce(func.sum(JobBatch.classified + JobBatch.failed + JobBatch.empty).filter(
                done, JobBatch.finished_at >= since), 0),
            func.coalesce(func.sum(JobBatch.tiles - JobBatch.retried).filter(counted), 0),
            func.coalesce(func.sum(JobBatch.uncertain).filter(done), 0),
        ).where(JobBatch.job_id.in_([job.id for job in chosen])).group_by(JobBatch.job_id)
    ).all()
    counts = {int(row[0]): [int(value) for value in row[1:]] for row in rows}
    answers = []
    for job in chosen:
        classified, failed, empty, batches_total, batches_done, recent, enqueued, uncertain = counts.get(
            job.id, [0] * 8)
        # A batch a worker finished before the producer recorded it counts in its row before the job's total:
        # the total is never less than the tiles of the batches, so the counts never exceed it.
        total = max(job.total_tiles, enqueued)
        answers.append(JobProgress(job.id, job.kind, job.state, total, classified, failed, batches_total,
                                   batches_done, recent / 60.0, empty, uncertain))
    return answers


def refresh_state(session: Session, *, job_id: int) -> str:
    """Mark a queued job completed once every enumerated tile is classified, failed or empty; returns the state."""
    job = get_job(session, job_id)
    if job.state == JobState.QUEUED and job.kind == JobKind.CLASSIFY:
        current = progress(session, job_id=job_id)
        if current.classified + current.failed + current.empty >= job.total_tiles:
            job.state, job.finished_at = JobState.COMPLETED, utcnow()
    return job.state


def set_state(session: Session, *, job_ids: Sequence[int], state: JobState, message: str | None = None) -> None:
    values: dict[str, Any] = {"state": state, "updated_at": utcnow()}
    if state in (JobState.COMPLETED, JobState.CANCELLED, JobState.FAILED):
        values["finished_at"] = utcnow()
    if message is not None:
        values["message"] = message
    session.execute(update(Job).where(Job.id.in_(job_ids)).values(values))
