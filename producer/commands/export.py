"""``tileclass export``: stream a job's results to a GeoJSON or CSV file, with a progress bar.

A job's results are the rows whose job is that job; a tile that a later job classified again with the same model
belongs to the later job. Rows are streamed from the database (a server-side cursor on PostgreSQL) into a
``FILE.partial`` that is renamed to ``FILE`` when complete, so a failed export never leaves a truncated file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.errors import TileclassError
from core.progress import counted, progress_bar
from producer.commands.options import FILE_FORMATS, FileFormat, IncludeEmpty, check_format

Groups = Annotated[str | None, typer.Option(
    "--groups", metavar="NAME", help="A class grouping of the job's model ('tileclass groups add'): adds a group "
                                     "column (a group property in GeoJSON).")]


def export(
    job: Annotated[int, typer.Argument(help="Job id whose results to export.")],
    fmt: FileFormat,
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (replaced when the export completes).")],
    include_empty: IncludeEmpty = False,
    groups: Groups = None,
) -> None:
    """Stream every result of a job to a GeoJSON or CSV file, without holding the rows in memory."""
    from core.class_groups import load_grouping
    from core.export import write_csv, write_geojson
    from core.queries import count_selected, iter_answers, select_results
    from producer.session import open_session

    check_format(fmt, FILE_FORMATS)
    if not out.parent.is_dir():
        raise TileclassError(f"cannot write {str(out)!r}: folder {str(out.parent)!r} does not exist")
    partial = out.with_name(out.name + ".partial")
    with open_session(read_only=True) as session:
        selection = select_results(session, job_id=job)
        group_of = None
        if groups is not None:
            group_of = load_grouping(session, groups, model_hash=selection.model_hash).group_of
        total = count_selected(session, selection=selection, include_empty=include_empty)
        bar = progress_bar(transient=False)
        task = bar.add_task(f"exporting job {job}", total=total, status="")
        rows = counted(iter_answers(session, selection=selection, include_empty=include_empty),
                       lambda n: bar.advance(task, n))
        try:
            with bar, partial.open("w", encoding="utf-8", newline="") as handle:
                if fmt == "geojson":
                    written = write_geojson(rows, handle, group_of=group_of)
                else:
                    classes = selection.model.class_names if selection.model else ()
                    written = write_csv(rows, handle, class_names=classes, with_empty=include_empty,
                                        group_of=group_of)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    partial.replace(out)
    typer.echo(f"wrote {written:,} tiles of job {job} to {out}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
