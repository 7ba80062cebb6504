"""How far jobs are: their tiles classified, failed, empty and pending, summed from their batch rows.

Workers upsert a batch's row (never increment it), so a redelivered batch cannot count twice. Retried failures
(``tileclass retry``) count once: see ``core.jobs`` for the arithmetic of ``retried``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.schema import BatchState, Job, JobBatch, utcnow


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


def progress_of(session: Session, *, chosen: Sequence[Job]) -> list[JobProgress]:
    """The progress of each of ``chosen``, in their order, from one grouped query over their batches."""
    done, counted = JobBatch.state == BatchState.DONE, JobBatch.state != BatchState.CANCELLED
    since = utcnow() - timedelta(minutes=1)
    rows = session.execute(
        select(
            JobBatch.job_id,
            func.coalesce(func.sum(JobBatch.classified).filter(done), 0),
            # Failures tried again by a retry batch count as pending, then as what they became (core.jobs).
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
