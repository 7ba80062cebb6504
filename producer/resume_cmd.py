"""``tileclass resume JOB``: enqueue again the tiles of a job that have no result, after the broker lost batches.

Use it when Redis was restarted without its data (or flushed), or when a worker on the embedded broker was killed:
the job's batches that are not done are replaced by new batches holding exactly its tiles that have neither a
result nor a failure recorded by the job. Prints how many tiles it enqueued (``--json``: one JSON object).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from core.errors import TileclassError
from producer.progress import walk_progress

if TYPE_CHECKING:
    from producer.resume import ResumeStats

MAX_BATCH_SIZE = 10_000


def resume(
    job: int = typer.Argument(..., help="Id of the classify job to resume (see 'tileclass status')."),
    batch_size: int | None = typer.Option(
        None, help="Tiles per message. Default: the size of the job's largest batch."
    ),
    max_queued: int | None = typer.Option(
        None, help="Most batches left waiting in the broker (then it waits). Default: TILECLASS_MAX_QUEUED_BATCHES."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as one JSON object."),
) -> None:
    """Enqueue again every tile of JOB that has no result and did not fail (after the broker lost messages)."""
    from core.migrate import ensure_schema
    from core.queue import make_app
    from core.settings import get_settings
    from producer.resume import plan_resume, resume_job

    settings = get_settings()
    if batch_size is not None and not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise TileclassError(f"--batch-size must be 1..{MAX_BATCH_SIZE} (got {batch_size})")
    bound = settings.max_queued_batches if max_queued is None else max_queued
    if bound < 1:
        raise TileclassError(f"--max-queued must be at least 1 (got {bound})")
    ensure_schema()
    plan = plan_resume(job, batch_size=batch_size)
    with walk_progress(not as_json, _describe) as show:
        stats, state = resume_job(plan, app=make_app(settings), max_queued=bound, on_progress=show)
    summary = _summary(job, stats, state, plan.batch_size)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    for reason, count in sorted(stats.report.skipped.items()):
        typer.echo(f"warning: left out {count:,} ({reason}), e.g. {', '.join(stats.report.examples[reason])}",
                   err=True)
    typer.echo(f"job {job}: enqueued {stats.enqueued:,} missing tiles again in {stats.batches:,} batches "
               f"({stats.classified:,} of {stats.found:,} found already classified, {stats.failed:,} failed and "
               f"not retried; {stats.superseded:,} unfinished batches replaced); state {state}")


def _summary(job_id: int, stats: ResumeStats, state: str, batch_size: int) -> dict[str, Any]:
    return {"job_id": job_id, "state": state, "found": stats.found, "classified": stats.classified,
            "failed": stats.failed, "enqueued": stats.enqueued, "batches": stats.batches,
            "superseded_batches": stats.superseded, "batch_size": batch_size,
            "left_out": dict(stats.report.skipped)}


def _describe(stats: ResumeStats) -> str:
    """The progress line while the job's region is walked again."""
    return f"found {stats.found:,} · missing {stats.enqueued:,} · classified {stats.classified:,}"


def register(app: typer.Typer) -> None:
    app.command("resume")(resume)
