"""The lease on a running training job: who runs it, and until when that is known to be true.

A train worker takes the lease when it starts a run (``take``) and renews it every third of
``TILECLASS_TRAIN_LEASE_SECONDS`` while it trains (``renew``, from ``worker.training``'s keeper thread). A worker
killed mid-run stops renewing, so its job's lease expires and ``tileclass status`` shows the job as ``lost``
(``is_lost``); ``tileclass resume JOB`` then sends the run again. Train requests are acknowledged when they start,
so nothing else would ever bring such a run back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from core import jobs
from core.db import aware
from core.job_states import JobInfo
from core.schema import Job, JobKind, JobState, utcnow

LOST = "lost"  # how status shows a running training job whose lease expired (not stored: it is a reading)


def is_lost(job: Job | JobInfo, now: datetime | None = None) -> bool:
    """A training job marked running whose worker stopped renewing its lease."""
    if job.kind != JobKind.TRAIN or job.state != JobState.RUNNING or job.lease_expires_at is None:
        return False
    return aware(job.lease_expires_at) < (now or utcnow())


def held_by_other(job: Job, owner: str, now: datetime | None = None) -> bool:
    """Another live worker holds the job's lease (a second delivery of its request must not train again)."""
    return (job.state == JobState.RUNNING and job.lease_owner not in (None, owner) and not is_lost(job, now)
            and job.lease_expires_at is not None)


def take(session: Session, job: Job, *, owner: str, seconds: float) -> None:
    """Mark ``job`` running under ``owner``'s lease for ``seconds``."""
    job.state, job.message, job.finished_at = JobState.RUNNING, "training", None
    job.lease_owner, job.lease_expires_at = owner, utcnow() + timedelta(seconds=seconds)


def renew(session: Session, *, job_id: int, owner: str, seconds: float) -> bool:
    """Extend ``owner``'s lease by ``seconds``; False when the job is no longer running under it."""
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.lease_owner == owner, Job.state == JobState.RUNNING)
        .values(lease_expires_at=utcnow() + timedelta(seconds=seconds)))
    return bool(getattr(result, "rowcount", 0))


def release(job: Job) -> None:
    """The run ended (or is being sent again): nobody holds the job."""
    job.lease_owner, job.lease_expires_at = None, None


def send_again(session: Session, *, job_id: int, message: str) -> None:
    """A lost run is sent again: nobody holds its job, which waits in ``queued`` for a train worker."""
    release(jobs.job_row(session, job_id))
    jobs.set_state(session, job_ids=[job_id], state=JobState.QUEUED, message=message)
