"""Host problems: what a worker could not do for a job because of its own host, for ``tileclass status``.

A worker that meets a host error (``core.errors.HostError``: a tile root not mounted, a checkpoint missing on this
host, the device out of memory) puts the batch back on the queue, pauses the job for a cooldown, and records one
row here per (worker, job): the latest reason, when it was first and last seen, and how often. ``job_id`` 0 is a
problem of the whole host (the worker then exits). The row is removed when that worker next finishes a batch of
the job. A database that cannot be reached cannot record its own outage: that one is only logged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.schema import HostProblem, utcnow

WHOLE_HOST = 0
MAX_REASON = 500


@dataclass(frozen=True)
class HostProblemRow:
    worker: str
    job_id: int
    reason: str
    first_seen: datetime
    last_seen: datetime
    occurrences: int

    def as_dict(self) -> dict[str, object]:
        return {"worker": self.worker, "job_id": self.job_id, "reason": self.reason,
                "first_seen": self.first_seen.isoformat(), "last_seen": self.last_seen.isoformat(),
                "occurrences": self.occurrences}


def record_problem(session: Session, *, worker: str, job_id: int, reason: str) -> None:
    """Note that ``worker`` could not serve ``job_id`` (``WHOLE_HOST``: any job) because of ``reason``."""
    row = session.get(HostProblem, (worker, job_id))
    now = utcnow()
    if row is None:
        session.add(HostProblem(worker=worker, job_id=job_id, reason=reason[:MAX_REASON], first_seen=now,
                                last_seen=now, occurrences=1))
        return
    row.reason, row.last_seen, row.occurrences = reason[:MAX_REASON], now, row.occurrences + 1


def clear_problems(session: Session, *, worker: str, job_ids: Iterable[int]) -> None:
    """``worker`` served these jobs again (or starts afresh): their problems are over."""
    session.execute(delete(HostProblem).where(HostProblem.worker == worker, HostProblem.job_id.in_(list(job_ids))))


def problems(session: Session, job_ids: Iterable[int] | None = None) -> list[HostProblemRow]:
    """The recorded problems, of these jobs and of whole hosts (all of them with ``None``), newest first."""
    query = select(HostProblem).order_by(HostProblem.last_seen.desc())
    if job_ids is not None:
        query = query.where(HostProblem.job_id.in_([*job_ids, WHOLE_HOST]))
    return [HostProblemRow(p.worker, p.job_id, p.reason, p.first_seen, p.last_seen, p.occurrences)
            for p in session.scalars(query)]
