"""``tileclass resume JOB``: enqueue again the tiles of a job that have no result, after the broker lost batches.

For a training job shown as ``lost`` (its worker died mid-run, so its lease expired) it sends the run again.

Use it when Redis was restarted without its data (or flushed), or when a worker on the embedded broker was killed:
the job's batches that are not done are replaced by new batches holding exactly its tiles that have neither a
result nor a failure recorded by the job. Prints how many tiles it enqueued (``--json``: one JSON object). Ctrl-C
stops it as it stops ``enqueue`` (exit code 130): what was published is recorded, and the same command continues.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from core.progress import walk_progress
from producer.commands.interrupts import stoppable
from producer.commands.options import Json, MaxQueued, check_batching
from producer.commands.printing import warn_left_out

if TYPE_CHECKING:
    from producer.pipeline import PassStats


def resume(
    job: int = typer.Argument(..., help="Id of the classify job, or the lost training job, to resume (see "
                                        "'tileclass status')."),
    batch_size: int | None = typer.Option(
        None, help="Tiles per message. Default: the size of the job's largest batch."
    ),
    max_queued: MaxQueued = None,
    as_json: Json = False,
) -> None:
    """Enqueue again every tile of JOB that has no result and did not fail (after the broker lost messages), or
    send a lost training job again."""
    from core.celery_app import connected_app
    from core.job_states import JobKind
    from core.jobs import get_job
    from core.settings import get_settings
    from producer.resume import resume_job, resume_target
    from producer.session import open_session

    bound = check_batching(batch_size, max_queued, get_settings().max_queued_batches)
    with open_session(read_only=True) as session:
        training = get_job(session, job).kind == JobKind.TRAIN
        target = None if training else resume_target(session, job_id=job, batch_size=batch_size)
    if target is None:
        _resend_training(job, as_json)
        return
    with stoppable() as stop, walk_progress(not as_json, _describe) as show:
        outcome = resume_job(job, target, app=connected_app(), max_queued=bound, on_progress=show, stop=stop)
    stats = outcome.stats
    if as_json:
        typer.echo(json.dumps({
            "job_id": job, "state": outcome.state, "found": stats.found, "classified": stats.skipped,
            "failed": stats.failed, "enqueued": stats.enqueued, "batches": stats.batches,
            "superseded_batches": outcome.superseded, "batch_size": target.batch_size,
            "left_out": dict(stats.report.skipped)}))
        return
    warn_left_out(stats.report)
    typer.echo(f"job {job}: enqueued {stats.enqueued:,} missing tiles again in {stats.batches:,} batches "
               f"({stats.skipped:,} of {stats.found:,} found already classified, {stats.failed:,} failed and "
               f"not retried; {outcome.superseded:,} unfinished batches replaced); state {outcome.state}")


def _resend_training(job: int, as_json: bool) -> None:
    from core.celery_app import connected_app
    from producer.train_queue import resend_training

    sent = resend_training(job, app=connected_app())
    typer.echo(json.dumps(sent) if as_json else f"training job {job}: its lost run was sent again; state queued")


def _describe(stats: PassStats) -> str:
    """The progress line while the job's region is walked again."""
    return f"found {stats.found:,} · missing {stats.enqueued:,} · classified {stats.skipped:,}"


def register(app: typer.Typer) -> None:
    app.command("resume")(resume)
