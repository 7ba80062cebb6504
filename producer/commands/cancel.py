"""``tileclass cancel JOB...``: stop jobs. Workers drop their batches still waiting in the broker without running them.

A batch a worker is already running finishes and is recorded; every later batch of the job is dropped when a
worker takes it (one database lookup each), so the queue drains quickly. ``tileclass status`` then shows the job
as cancelled with what was classified before. Cancelling is final: ``tileclass resume`` refuses cancelled jobs.

A training job that is running stops at the end of its current epoch: its worker saves the best checkpoint so far
as ``TILECLASS_MODEL_DIR/train-job-<id>/model.pt`` without registering it, and ``tileclass status JOB`` then says
where it is (worker/training.py). A queued one never starts.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from producer.commands.options import Json


def cancel(
    job_ids: list[int] = typer.Argument(..., metavar="JOB...", help="Id(s) of the job(s) to cancel."),
    as_json: Json = False,
) -> None:
    """Cancel jobs: their pending batches are dropped by the workers, a running batch finishes."""
    from core import jobs, leases
    from core.job_states import JobKind, JobState
    from producer.session import open_session

    rows: list[dict[str, Any]] = []
    with open_session() as session:
        chosen = jobs.cancel(session, job_ids=job_ids)  # as they were: every id exists, none has finished
        fresh = [job.id for job in chosen if job.state != JobState.CANCELLED]
        # How each training job stood before the cancel: queued, running, or lost (its worker died).
        runs = {job.id: "lost" if leases.is_lost(job) else str(job.state) for job in chosen
                if job.kind == JobKind.TRAIN and job.id in fresh}
        for job in chosen:
            if job.kind == JobKind.TRAIN:
                rows.append(_training_row(job.id, was_cancelled=job.id not in fresh, run=runs.get(job.id)))
                continue
            current = jobs.progress(session, job_id=job.id)
            rows.append({"job_id": job.id, "state": JobState.CANCELLED.value, "was_cancelled": job.id not in fresh,
                         "total": current.total, "classified": current.classified, "failed": current.failed,
                         "not_classified": current.pending})
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        already = " (already cancelled)" if row["was_cancelled"] else ""
        if row.get("kind") == "train":
            typer.echo(f"training job {row['job_id']} cancelled{already}: {_training_note(row)}")
            continue
        typer.echo(f"job {row['job_id']} cancelled{already}: {row['classified']:,} classified, {row['failed']:,} "
                   f"failed, {row['not_classified']:,} will not be classified (workers drop its pending batches)")


def _training_row(job_id: int, *, was_cancelled: bool, run: str | None) -> dict[str, Any]:
    """A cancelled training job: ``run`` is how it stood (queued, running, lost; None: cancelled before)."""
    from core.settings import get_settings

    folder = (get_settings().model_dir / f"train-job-{job_id}").resolve()
    return {"job_id": job_id, "kind": "train", "state": "cancelled", "was_cancelled": was_cancelled, "run": run,
            "checkpoint": str(folder / "model.pt") if run == "running" else None,
            "epochs": str(folder / "epochs") if run in ("running", "lost") else None}


def _training_note(row: dict[str, Any]) -> str:
    if row["run"] == "running":
        return (f"its worker stops it at the end of the current epoch and leaves the best checkpoint so far, not "
                f"registered, at {row['checkpoint']} on its host ('tileclass status {row['job_id']}' says when)")
    if row["run"] == "lost":
        return f"its run was lost with its worker; the epoch checkpoints it wrote stay in {row['epochs']}"
    return "it will not start" if row["run"] else "nothing changed"


def register(app: typer.Typer) -> None:
    app.command("cancel")(cancel)
