"""What ``tileclass status`` shows: one row per job, with its progress and its workers' host problems, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from core import host_problems, jobs, leases
from core.schema import Job, JobKind, JobState
from producer.session import open_session


def collect(job_id: int | None, limit: int) -> list[dict[str, Any]]:
    """One dict per job, newest first; queued jobs whose last batch is done are marked completed on the way."""
    with open_session() as session:
        if job_id is not None:
            chosen = [jobs.get_job(session, job_id)]
        else:
            chosen = list(session.scalars(select(Job).order_by(Job.id.desc()).limit(limit)))
        problems: dict[int, list[dict[str, object]]] = {}
        for problem in host_problems.problems(session, [job.id for job in chosen]):
            problems.setdefault(problem.job_id, []).append(problem.as_dict())
        whole_host = problems.get(host_problems.WHOLE_HOST, [])
        rows = []
        for job in chosen:
            if job.state == JobState.QUEUED and job.kind == JobKind.CLASSIFY:
                jobs.refresh_state(session, job_id=job.id)
            current = jobs.progress(session, job_id=job.id)
            rows.append({
                "job_id": job.id, "kind": job.kind, "state": leases.LOST if leases.is_lost(job) else job.state,
                "total": current.total,
                "classified": current.classified, "failed": current.failed, "empty": current.empty,
                "pending": current.pending,
                "skipped": job.skipped_tiles, "batches_total": current.batches_total,
                "batches_done": current.batches_done, "tiles_per_second": round(current.tiles_per_second, 2),
                "eta_seconds": None if current.eta_seconds is None else round(current.eta_seconds, 1),
                "root": job.source.get("name"), "model": job.model_hash, "message": job.message,
                "created_at": _iso(job.created_at), "finished_at": _iso(job.finished_at),
                # Workers that put this job's batches back because of their own host (none failed a tile for it).
                "host_problems": problems.get(job.id, []) + (whole_host if job.state == JobState.QUEUED else []),
            })
    return rows


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
