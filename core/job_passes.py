"""What a producer pass (``enqueue``, ``resume``, ``retry``) records of its job's batches, and reads back.

A pass reserves batch numbers in the job's row before any of them reaches the broker (``seq_reserved``), records the
batches it published with the walk position up to which everything is published (``record_progress``), and
supersedes batches another pass may have left in the broker unrecorded (``supersede_batches``) or that the broker
lost (``supersede_unfinished_batches``). ``producer.publication`` is the pass; ``core.jobs`` moves its job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.db import upsert_insert
from core.job_states import BatchState
from core.jobs import job_row, record_batches_enqueued
from core.schema import JobBatch, utcnow


def next_batch_seq(session: Session, *, job_id: int) -> int:
    """The sequence number for a job's next batch (continues after a resumed or re-run enqueue)."""
    last = session.scalar(select(func.max(JobBatch.seq)).where(JobBatch.job_id == job_id))
    return 0 if last is None else int(last) + 1


def largest_batch(session: Session, *, job_id: int) -> int | None:
    """The most tiles any batch of the job held (a resume or retry sends batches of that size); None: no batch."""
    largest = session.scalar(select(func.max(JobBatch.tiles)).where(JobBatch.job_id == job_id))
    return None if largest is None else int(largest)


def waiting_batches(session: Session, *, job_id: int) -> int:
    """How many of the job's batches are neither done nor superseded."""
    return int(session.scalar(select(func.count()).select_from(JobBatch).where(
        JobBatch.job_id == job_id, JobBatch.state == BatchState.QUEUED)) or 0)


def record_progress(session: Session, *, job_id: int, batches: Sequence[tuple[int, int]], resume_after: Any,
                    seq_reserved: int, seq_recorded: int, skipped: int, retries: bool = False) -> None:
    """The producer's bookkeeping in one transaction: published ``(seq, tiles)`` batches (``retries``: batches of
    retried failures), the walk position up to which everything is recorded, the batch numbers handed out and
    recorded, and the running totals."""
    record_batches_enqueued(session, job_id=job_id, batches=batches, retries=retries)
    job = job_row(session, job_id)
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
