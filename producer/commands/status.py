"""``tileclass status``: how far jobs are — total, classified (of which uncertain), failed, empty, pending, tiles/s,
ETA.

A running job's tiles/s is over the last minute (its ETA follows from it); a finished job's is its average over its
active time (``core.job_speed``: a job of 10 s is not spread over a minute).

A job whose batches a worker put back because of its own host (a tile root not mounted there, no checkpoint
there) shows that worker's newest problem in the note column; ``--json`` lists them all under ``host_problems``.

Without a job id it shows the most recent jobs. ``--json`` prints one object for one job, a list otherwise;
``--watch --json`` prints one such line per refresh. ``--watch`` ends when every shown job has finished
(completed, cancelled, failed, or lost: a training job whose worker died, which ``tileclass resume`` sends again)
or on Ctrl-C (exit 0: leaving a watch is not an error).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import typer

from producer.commands.options import Json

FINISHED = ("completed", "cancelled", "failed", "lost")  # lost: a training run whose worker died (resume it)


def status(
    job: int | None = typer.Argument(None, help="Job id. Default: the most recent jobs."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh until the job(s) finish or Ctrl-C."),
    as_json: Json = False,
    limit: int = typer.Option(10, min=1, max=1000, help="How many recent jobs to show without a job id."),
    interval: float = typer.Option(2.0, min=0.1, max=3600, help="Seconds between refreshes with --watch."),
) -> None:
    """Show the progress of one job or of the most recent jobs."""
    if not watch:
        _show(collect(job, limit), job, as_json)
        return
    try:
        _watch(job, limit, as_json, interval)
    except KeyboardInterrupt:
        return


def collect(job_id: int | None, limit: int) -> list[dict[str, Any]]:
    """The jobs' documents (``core.job_status``); a queued job found finished is marked completed on the way."""
    from core.job_status import job_documents
    from producer.session import open_session

    with open_session() as session:
        return job_documents(session, job_id=job_id, limit=limit, refresh=True)


def _show(rows: list[dict[str, Any]], job_id: int | None, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows[0] if job_id is not None else rows))
    elif not rows:
        typer.echo("No jobs yet: start one with 'tileclass enqueue'.")
    else:
        from rich.console import Console

        Console(file=sys.stdout, width=160).print(table(rows))


def table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    grid = Table(box=None, pad_edge=False)
    for name in ("job", "kind", "state", "total", "classified", "failed", "empty", "pending", "tiles/s", "ETA",
                 "note"):
        grid.add_column(name, justify="right" if name not in ("kind", "state", "note") else "left")
    for row in rows:
        counts = [f"{row[k]:,}" for k in ("total", "classified", "failed", "empty", "pending")]
        if row.get("uncertain"):  # answers less confident than the job's --uncertain-below
            counts[1] += f" ({row['uncertain']:,} uncertain)"
        if row["kind"] != "classify":
            counts = ["-"] * 5
        note = host_note(row) or row["message"] or (f"root {row['root']}" if row["root"] else "")
        grid.add_row(str(row["job_id"]), row["kind"], row["state"], *counts, f"{row['tiles_per_second']:,.1f}",
                     eta(row), note)
    return grid


def host_note(row: dict[str, Any]) -> str:
    """The newest host problem of the job's workers, if any: their batches went back to the queue."""
    found = row.get("host_problems") or []
    if not found:
        return ""
    newest = found[0]
    others = f" (+{len(found) - 1} more)" if len(found) > 1 else ""
    return f"host problem on {newest['worker']}, {newest['occurrences']}x: {newest['reason']}{others}"


def eta(row: dict[str, Any]) -> str:
    if row["kind"] != "classify" or row["state"] in FINISHED:
        return "-"
    seconds = row["eta_seconds"]
    if seconds is None:
        return "?"  # nothing finished in the last minute
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _watch(job_id: int | None, limit: int, as_json: bool, interval: float) -> None:
    if as_json:
        while True:
            rows = collect(job_id, limit)
            _show(rows, job_id, True)
            if _all_finished(rows):
                return
            time.sleep(interval)
    from rich.console import Console
    from rich.live import Live

    rows = collect(job_id, limit)
    with Live(table(rows), console=Console(file=sys.stdout, width=160), auto_refresh=False) as live:
        while not _all_finished(rows):
            time.sleep(interval)
            rows = collect(job_id, limit)
            live.update(table(rows), refresh=True)


def _all_finished(rows: list[dict[str, Any]]) -> bool:
    return all(row["state"] in FINISHED for row in rows)


def register(app: typer.Typer) -> None:
    app.command("status")(status)
