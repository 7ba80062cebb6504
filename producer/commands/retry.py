"""``tileclass retry JOB``: enqueue a job's failed tiles again, after their files or the host were fixed.

The tiles go out as new batches of the same job; the job is queued again until they finish. A tile that then
succeeds leaves the failure list and counts as classified in ``tileclass status``; one that fails again stays
failed, with one more attempt. ``--reason TEXT`` retries only the failures whose reason contains TEXT (see them
with ``tileclass failures JOB``). A job without failures to retry says so and exits 0. Ctrl-C stops it as it stops
``enqueue`` (exit code 130): what was published is recorded, and the same command continues.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from core.progress import walk_progress
from producer.commands.interrupts import stoppable
from producer.commands.options import Json, MaxQueued, check_batching

if TYPE_CHECKING:
    from collections.abc import Callable

    from producer.pipeline import PassStats
    from producer.retry import RetryPlan

ReasonFilter = Annotated[str | None, typer.Option(
    "--reason", metavar="TEXT", help="Only failures whose reason contains TEXT, ignoring case, e.g. 'no such file' "
                                     "or 'corrupt' ('tileclass failures JOB' lists the reasons).")]


def retry(
    job: Annotated[int, typer.Argument(help="Id of the classify job whose failed tiles to enqueue again.")],
    reason: ReasonFilter = None,
    batch_size: int | None = typer.Option(None, help="Tiles per message. Default: the size of the job's largest "
                                                     "batch."),
    max_queued: MaxQueued = None,
    as_json: Json = False,
) -> None:
    """Enqueue JOB's failed tiles again as new batches of the job (after the files or the host were fixed)."""
    from core.celery_app import connected_app
    from core.settings import get_settings
    from producer.retry import plan_retry, retry_failures
    from producer.session import open_session

    bound = check_batching(batch_size, max_queued, get_settings().max_queued_batches)
    with open_session(read_only=True) as session:
        plan = plan_retry(session, job_id=job, reason=reason, batch_size=batch_size)
    if plan.matching == 0:
        _nothing(plan, as_json)
        return
    with stoppable() as stop, walk_progress(not as_json, _describe(plan)) as show:
        outcome = retry_failures(plan, app=connected_app(), max_queued=bound, on_progress=show, stop=stop)
    stats = outcome.stats
    if as_json:
        typer.echo(json.dumps({"job_id": job, "state": outcome.state, "reason": plan.reason,
                               "enqueued": stats.enqueued, "batches": stats.batches, "failed": plan.failed,
                               "superseded_batches": outcome.superseded, "batch_size": plan.target.batch_size}))
        return
    which = f" whose reason contains {plan.reason!r}" if plan.reason else ""
    typer.echo(f"job {job}: enqueued {stats.enqueued:,} failed tile{'s' if stats.enqueued != 1 else ''}{which} again "
               f"in {stats.batches:,} batch{'es' if stats.batches != 1 else ''}; state {outcome.state} (follow it with "
               f"'tileclass status {job} --watch')")


def _nothing(plan: RetryPlan, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"job_id": plan.job_id, "state": None, "reason": plan.reason, "enqueued": 0,
                               "batches": 0, "failed": plan.failed, "superseded_batches": 0,
                               "batch_size": plan.target.batch_size}))
    elif plan.failed == 0:
        typer.echo(f"job {plan.job_id} has no failed tiles: nothing to retry")
    else:
        typer.echo(f"none of job {plan.job_id}'s {plan.failed:,} failed tiles has a reason containing "
                   f"{plan.reason!r}: nothing to retry ('tileclass failures {plan.job_id}' lists their reasons)")


def _describe(plan: RetryPlan) -> Callable[[PassStats], str]:
    return lambda stats: f"retrying job {plan.job_id}: {stats.enqueued:,} of {plan.matching:,} failed tiles enqueued"


def register(app: typer.Typer) -> None:
    app.command("retry")(retry)
