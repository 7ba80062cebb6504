"""What ``tileclass status --json`` prints and ``/api/jobs`` answers: one document per job, newest first, with its
progress (``uncertain``: of its classified tiles, those flagged uncertain), its bounds, its speed and its workers'
host problems.

Speed: a running job's ``tiles_per_second`` is over the last minute, with the ETA it gives; a finished job's is
the average over its active time (``core.job_speed``; ``active_seconds``). The Prometheus gauge
(``core.metrics.fleet``) stays the last minute's rate.

A queued classify job whose last batch is done reads as ``completed``; with ``refresh`` (the CLI) that state is
also written, so the job stays completed for every later reader. The HTTP API reads without writing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import host_problems, jobs, leases
from core.job_progress import JobProgress
from core.job_speed import average_speeds
from core.schema import Job, JobKind, JobState

FINISHED_STATES = (JobState.COMPLETED, JobState.CANCELLED, JobState.FAILED)  # a classify job's batches are settled


def job_documents(session: Session, *, job_id: int | None = None, limit: int = 10,
                  refresh: bool = False) -> list[dict[str, Any]]:
    """One dict per job (``job_id``'s alone, else the ``limit`` most recent), newest first; ``NotFoundError`` for an
    unknown ``job_id``."""
    if job_id is not None:
        chosen = [jobs.job_row(session, job_id)]
    else:
        chosen = list(session.scalars(select(Job).order_by(Job.id.desc()).limit(limit)))
    problems: dict[int, list[dict[str, object]]] = {}
    for problem in host_problems.problems(session, [job.id for job in chosen]):
        problems.setdefault(problem.job_id, []).append(problem.as_dict())
    whole_host = problems.get(host_problems.WHOLE_HOST, [])
    rows = []
    for job in chosen:
        if refresh and job.state == JobState.QUEUED and job.kind == JobKind.CLASSIFY:
            jobs.refresh_state(session, job_id=job.id)
        current = jobs.progress(session, job_id=job.id)
        state = _state(job, current)
        finished = job.kind == JobKind.CLASSIFY and state in FINISHED_STATES
        speed = average_speeds(session, chosen=[job])[job.id] if finished else None
        rows.append({
            "job_id": job.id, "kind": job.kind, "state": state,
            "total": current.total,
            "classified": current.classified, "uncertain": current.uncertain, "failed": current.failed,
            "empty": current.empty,
            "pending": current.pending,
            "skipped": job.skipped_tiles, "batches_total": current.batches_total,
            "batches_done": current.batches_done,
            "tiles_per_second": round(current.tiles_per_second if speed is None else speed.tiles_per_second, 2),
            "active_seconds": None if speed is None else round(speed.active_seconds, 1),
            "eta_seconds": None if current.eta_seconds is None else round(current.eta_seconds, 1),
            "root": job.source.get("name"), "model": job.model_hash, "message": job.message,
            # The job's bounds (enqueue --min-coverage, --uncertain-below); None: from before jobs kept them, or
            # no uncertainty bound.
            "min_coverage": job.min_coverage, "uncertain_below": job.uncertain_below,
            "created_at": _iso(job.created_at), "finished_at": _iso(job.finished_at),
            # Workers that put this job's batches back because of their own host (none failed a tile for it).
            "host_problems": problems.get(job.id, []) + (whole_host if job.state == JobState.QUEUED else []),
        })
    return rows


def _state(job: Job, current: JobProgress) -> str:
    if leases.is_lost(job):
        return leases.LOST
    if job.state == JobState.QUEUED and job.kind == JobKind.CLASSIFY and current.pending == 0:
        return JobState.COMPLETED.value  # what jobs.refresh_state writes once a writer looks
    return str(job.state)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
