"""``tileclass cancel JOB...``: stop jobs. Workers drop their batches still waiting in the broker without running them.

A batch a worker is already running finishes and is recorded; every later batch of the job is dropped when a
worker takes it (one database lookup each), so the queue drains quickly. ``tileclass status`` then shows the job
as cancelled with what was classified before. Cancelling is final: ``tileclass resume`` refuses cancelled jobs.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from core.errors import TileclassError
from producer.commands.options import Json

FINISHED = ("completed", "failed")


def cancel(
    job_ids: list[int] = typer.Argument(..., metavar="JOB...", help="Id(s) of the job(s) to cancel."),
    as_json: Json = False,
) -> None:
    """Cancel jobs: their pending batches are dropped by the workers, a running batch finishes."""
    from core import jobs
    from core.schema import JobState
    from producer.session import open_session

    rows: list[dict[str, Any]] = []
    with open_session() as session:
        chosen = [jobs.get_job(session, job_id) for job_id in dict.fromkeys(job_ids)]  # every id exists, or none
        done = [job for job in chosen if job.state in FINISHED]
        if done:
            listed = ", ".join(f"job {job.id} is {job.state}" for job in done)
            raise TileclassError(f"{listed}: only jobs that are still enqueuing, queued or running can be cancelled")
        fresh = [job.id for job in chosen if job.state != JobState.CANCELLED]
        if fresh:
            jobs.set_state(session, job_ids=fresh, state=JobState.CANCELLED, message="cancelled by the user")
        for job in chosen:
            current = jobs.progress(session, job_id=job.id)
            rows.append({"job_id": job.id, "state": JobState.CANCELLED.value, "was_cancelled": job.id not in fresh,
                         "total": current.total, "classified": current.classified, "failed": current.failed,
                         "not_classified": current.pending})
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        already = " (already cancelled)" if row["was_cancelled"] else ""
        typer.echo(f"job {row['job_id']} cancelled{already}: {row['classified']:,} classified, {row['failed']:,} "
                   f"failed, {row['not_classified']:,} will not be classified (workers drop its pending batches)")


def register(app: typer.Typer) -> None:
    app.command("cancel")(cancel)
