"""``tileclass failures JOB``: each failed tile of a job, with its coordinates or path, reason, attempts and time.

The rows are streamed from the database (``core.queries.iter_job_failures``; a server-side cursor on PostgreSQL),
oldest failure first, so a job with millions of failures lists them in constant memory. ``--format csv`` writes
``z,x,y,root,path,reason,attempts,failed_at``; ``--format json`` an array of objects with the same fields (and
``tile``, ``job``, ``model``), one per line. A tile that a later retry classified is no longer listed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated

import typer

from producer.commands.options import check_format

if TYPE_CHECKING:
    from core.queries import TileFailure

FORMATS = ("table", "csv", "json")


def failures(
    job: Annotated[int, typer.Argument(help="Job id whose failed tiles to list (see 'tileclass status').")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table (for people), csv or json (for scripts).")] =
    "table",
    reason: Annotated[str | None, typer.Option(
        "--reason", metavar="TEXT", help="Only failures whose reason contains TEXT, ignoring case.")] = None,
) -> None:
    """List the failed tiles of JOB: coordinates or path, reason, attempts and when it last failed."""
    from core.export import failure_csv_chunks, json_array_chunks
    from core.queries import iter_job_failures
    from producer.session import open_session

    check_format(fmt, FORMATS)
    with open_session(read_only=True) as session:
        rows = iter_job_failures(session, job_id=job, reason=reason)
        if fmt == "csv":
            _write(failure_csv_chunks(rows))
        elif fmt == "json":
            _write(json_array_chunks(failure.as_dict() for failure in rows))
        else:
            _write_table(rows, job, reason)


def _write_table(rows: Iterable[TileFailure], job: int, reason: str | None) -> None:
    count = 0
    for failure in rows:
        if not count:
            typer.echo(f"{'tile':<24} {'attempts':>8}  {'failed at (UTC)':<19}  reason")
        when = f"{failure.failed_at:%Y-%m-%d %H:%M:%S}" if failure.failed_at else "-"
        typer.echo(f"{failure.tile!s:<24} {failure.attempts:>8}  {when:<19}  {failure.reason}")
        count += 1
    which = f" whose reason contains {reason!r}" if reason else ""
    if count:
        typer.echo(f"{count:,} failed tile{'s' if count != 1 else ''} of job {job}{which} "
                   f"(retry them with 'tileclass retry {job}')")
    else:
        typer.echo(f"job {job} has no failed tiles{which}")


def _write(chunks: Iterable[str]) -> None:
    for chunk in chunks:
        sys.stdout.write(chunk)


def register(app: typer.Typer) -> None:
    app.command("failures")(failures)
