"""How fast a finished job went: its tiles over its active time, for ``tileclass status`` and ``/api/jobs``.

The rate over the last minute (``core.job_progress.JobProgress.tiles_per_second``, also the Prometheus gauge) suits
a running job, but a job that took 10 s would show its tiles spread over a whole minute, and a job finished an hour
ago would show 0. A finished job's speed is its tiles divided by its active time instead: the time during which
some batch of it waited in the queue or was being classified.

Each done batch spans its ``enqueued_at`` to its ``finished_at``; spans that overlap or touch merge, and the gaps
between them do not count (the hours between a job and its ``tileclass retry``). The job's first span starts when
the job was created, just before its first batch was published: a worker may finish a batch before the producer
writes its row, and then the row's ``enqueued_at`` is the batch's finish.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from operator import itemgetter

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import aware
from core.schema import BatchState, Job, JobBatch


@dataclass(frozen=True, slots=True)
class Speed:
    """The tiles a job's done batches finished (classified, failed or empty) and the seconds it was active."""

    tiles: int
    active_seconds: float

    @property
    def tiles_per_second(self) -> float:
        return self.tiles / self.active_seconds if self.active_seconds > 0 else 0.0


def average_speeds(session: Session, *, chosen: Sequence[Job]) -> dict[int, Speed]:
    """The speed of each of ``chosen`` over its active time (see the module docstring), by job id.

    Reads every done batch's two times: meant for finished jobs, whose batches no longer change.
    """
    created = {job.id: job.created_at for job in chosen}
    rows = session.execute(
        select(JobBatch.job_id, JobBatch.enqueued_at, JobBatch.finished_at,
               JobBatch.classified + JobBatch.failed + JobBatch.empty)
        .where(JobBatch.job_id.in_(list(created)), JobBatch.state == BatchState.DONE,
               JobBatch.finished_at.is_not(None))
        .order_by(JobBatch.job_id, JobBatch.enqueued_at)
    )
    speeds = {job_id: Speed(0, 0.0) for job_id in created}
    for job_id, batches in groupby(rows, key=itemgetter(0)):
        spans = [(aware(start), aware(end), int(tiles)) for _, start, end, tiles in batches if end is not None]
        speeds[job_id] = Speed(sum(tiles for *_, tiles in spans), _active_seconds(aware(created[job_id]), spans))
    return speeds


def _active_seconds(created: datetime, spans: Iterable[tuple[datetime, datetime, int]]) -> float:
    """The length of the union of the spans (sorted by start), the first one starting at ``created``."""
    total, current = 0.0, None
    for start, end, _ in spans:
        if current is None:
            current = (min(created, start), end)
        elif start > current[1]:  # a gap: nothing of the job waited or ran
            total += _seconds(*current)
            current = (start, end)
        else:
            current = (current[0], max(current[1], end))
    return total + (_seconds(*current) if current is not None else 0.0)


def _seconds(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds(), 0.0)  # hosts' clocks may disagree by a little
