"""``tileclass export``: stream a job's results to a GeoJSON or CSV file, with a progress bar.

A job's results are the rows whose job is that job; a tile that a later job classified again with the same model
belongs to the later job. Rows are streamed from the database (a server-side cursor on PostgreSQL) into a
``FILE.partial`` that is renamed to ``FILE`` when complete, so a failed export never leaves a truncated file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import typer

from core.errors import TileclassError

EXPORT_FORMATS = ("geojson", "csv")
T = TypeVar("T")


def counted(rows: Iterable[T], advance: Callable[[int], object], every: int = 1000) -> Iterator[T]:
    """Yield ``rows`` unchanged, calling ``advance(n)`` every ``every`` rows and once at the end."""
    pending = 0
    for row in rows:
        yield row
        pending += 1
        if pending == every:
            advance(pending)
            pending = 0
    if pending:
        advance(pending)


def export(
    job: int = typer.Argument(..., help="Job id whose results to export."),
    fmt: str = typer.Option(..., "--format", "-f", help="geojson (tile polygons) or csv (one row per tile, with "
                            "per-class probabilities)."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write (replaced when the export completes)."),
) -> None:
    """Stream every result of a job to a GeoJSON or CSV file, without holding the rows in memory."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from core.db import session_scope
    from core.export import write_csv, write_geojson
    from core.migrate import ensure_schema
    from core.queries import count_selected, iter_results, select_results

    if fmt not in EXPORT_FORMATS:
        raise TileclassError(f"unknown format {fmt!r}: choose {' or '.join(EXPORT_FORMATS)}")
    if not out.parent.is_dir():
        raise TileclassError(f"cannot write {str(out)!r}: folder {str(out.parent)!r} does not exist")
    partial = out.with_name(out.name + ".partial")
    ensure_schema()
    columns = (TextColumn("exporting job {task.fields[job]}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with session_scope(read_only=True) as session:
        selection = select_results(session, job_id=job)
        total = count_selected(session, selection=selection)
        bar = Progress(*columns, console=Console(stderr=True))
        task = bar.add_task("export", total=total, job=job)
        rows = counted(iter_results(session, selection=selection), lambda n: bar.advance(task, n))
        try:
            with bar, partial.open("w", encoding="utf-8", newline="") as handle:
                if fmt == "geojson":
                    written = write_geojson(rows, handle)
                else:
                    classes = selection.model.class_names if selection.model else ()
                    written = write_csv(rows, handle, class_names=classes)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    partial.replace(out)
    typer.echo(f"wrote {written:,} tiles of job {job} to {out}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
