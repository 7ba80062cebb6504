"""``tileclass query``: what is this tile, what is under this point, what is in this bbox.

``tile`` and ``point`` exit 0 with the answer ("empty" for a tile found empty: nothing to classify there), or 1
with "not classified" when neither a result nor an empty record exists, and a hint on stderr saying where the
model's results are (``core.queries.extent``: another zoom, x and y or lon and lat swapped); bad input
(a tile out of range, a malformed bbox, an unknown model, job or label) exits 2 with one line.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from core.errors import TileclassError
from producer.commands.options import (
    TABLE_FORMATS,
    IncludeEmpty,
    Json,
    ModelRef,
    RequiredBbox,
    RequiredZoom,
    TableFormat,
    TopK,
    check_format,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from core.queries import Answer, Selection, TileAnswer, TileReport
    from core.tiles import Tile


def _answer_text(answer: TileAnswer, top_k: int) -> list[str]:
    job = f"job {answer.job_id}" if answer.job_id is not None else "no job"
    unsure = ", uncertain" if answer.uncertain else ""
    # A result from before coverage was measured has none to show (None; null in --json).
    coverage = f" · coverage {answer.coverage:.1%}" if answer.coverage is not None else ""
    lines = [
        f"{answer.tile}: {answer.label} (confidence {answer.confidence:.3f}{unsure})",
        f"  model {answer.model_hash[:12]} · {job} · classified {answer.classified_at:%Y-%m-%d %H:%M:%S} UTC"
        f"{coverage}",
    ]
    if top_k:
        lines.append("  top classes:")
        width = max(len(label) for label, _ in answer.top(top_k)) if answer.probabilities else 0
        lines += [f"    {label:<{width}}  {p:.3f}" for label, p in answer.top(top_k)]
    return lines


def _report(report: TileReport, *, top_k: int, as_json: bool, lead: str = "",
            point: tuple[float, float] | None = None) -> None:
    tile, answer, empty = report.tile, report.answer, report.empty
    if as_json:
        typer.echo(json.dumps(report.as_dict(top_k=top_k), indent=2 if report.found else None))
    elif answer is not None:
        lines = _answer_text(answer, top_k)
        typer.echo("\n".join([lead + lines[0], *lines[1:]]))
    elif empty is not None:
        job = f"job {empty.job_id}" if empty.job_id is not None else "no job"
        typer.echo(f"{lead}{tile}: empty ({empty.reason})\n  model {empty.model_hash[:12]} · {job} · found "
                   f"{empty.found_at:%Y-%m-%d %H:%M:%S} UTC")
    else:
        by = f"by model {report.model_hash[:12]}" if report.model_hash else "by any model"
        typer.echo(f"{lead}{tile}: not classified {by}")
        if (hint := report.hint(point=point)) is not None:
            typer.echo(f"hint: {hint}", err=True)
    if not as_json and report.corrections:
        typer.echo(_corrections_text(report))
    if not report.found:
        raise typer.Exit(1)


def _corrections_text(report: TileReport) -> str:
    """The newest correction of the tile (a person's label, kept beside the model's result) and how many before."""
    newest, earlier = report.corrections[0], len(report.corrections) - 1
    origin = f", from {newest.origin}" if newest.origin else ""
    line = (f"  corrected to {newest.label} by {newest.author} · {newest.created_at:%Y-%m-%d %H:%M:%S} UTC "
            f"(model {newest.model_hash[:12]}{origin})")
    return line + (f"\n  {earlier} earlier correction{'s' if earlier != 1 else ''}" if earlier else "")


def _check_top_k(top_k: int) -> None:
    if top_k < 0:
        raise TileclassError(f"--top-k must be 0 or more (got {top_k})")


def tile(
    spec: str = typer.Argument(..., metavar="Z/X/Y", help="The tile, for example 17/70420/42997."),
    model: ModelRef = None,
    top_k: TopK = 3,
    as_json: Json = False,
) -> None:
    """The label, confidence and top classes of one tile, or "empty" (exit 1 if it is not classified)."""
    from core.tiles import Tile

    _look_up(Tile.parse(spec), model, top_k, as_json)


def point(
    lon: Annotated[float, typer.Option("--lon", help="Longitude in WGS84 degrees (west is negative).")],
    lat: Annotated[float, typer.Option("--lat", help="Latitude in WGS84 degrees (south is negative).")],
    zoom: RequiredZoom,
    model: ModelRef = None,
    top_k: TopK = 3,
    as_json: Json = False,
) -> None:
    """The same as ``query tile``, for the tile under a point (exit 1 if it is not classified)."""
    from core.tiles import Tile

    lead = "" if as_json else f"point ({lon:g}, {lat:g}) at zoom {zoom} is tile "
    _look_up(Tile.at_point(lon, lat, zoom), model, top_k, as_json, lead=lead, point=(lon, lat))


def _look_up(wanted: Tile, model: str | None, top_k: int, as_json: bool, *, lead: str = "",
             point: tuple[float, float] | None = None) -> None:
    from core.queries import report_tile
    from producer.session import open_session

    _check_top_k(top_k)
    with open_session(read_only=True) as session:
        report = report_tile(session, tile=wanted, model_ref=model)
    _report(report, top_k=top_k, as_json=as_json, lead=lead, point=point)


def bbox(
    box: RequiredBbox,
    zoom: RequiredZoom,
    label: list[str] = typer.Option([], "--label", "-l", help="Only this class (repeat for several)."),
    min_confidence: float | None = typer.Option(None, "--min-confidence", help="Only results at least this "
                                                "confident (0..1)."),
    job: int | None = typer.Option(None, "--job", help="Only the results of this job."),
    uncertain: bool | None = typer.Option(None, "--uncertain/--confident", help="--uncertain: only the answers "
                                          "flagged uncertain (less confident than their job's enqueue "
                                          "--uncertain-below); --confident: none of them. Neither: all."),
    model: ModelRef = None,
    limit: int | None = typer.Option(None, "--limit", help="At most this many tiles, in x then y order."),
    fmt: TableFormat = "table",
    include_empty: IncludeEmpty = False,
) -> None:
    """Every classified tile of a bbox at one zoom, filtered, as a table, JSON, CSV or GeoJSON."""
    from core.export import write_csv, write_geojson, write_json
    from core.queries import BBox, iter_answers, select_results
    from producer.session import open_session

    check_format(fmt, TABLE_FORMATS)
    if limit is not None and limit < 1:
        raise TileclassError(f"--limit must be 1 or more (got {limit})")
    region = BBox.parse(box)
    out = sys.stdout
    with open_session(read_only=True) as session:
        selection = select_results(session, job_id=job, bbox=region, zoom=zoom, model_ref=model, labels=label,
                                   min_confidence=min_confidence, uncertain=uncertain)
        rows = iter_answers(session, selection=selection, include_empty=include_empty, limit=limit)
        if fmt == "geojson":
            write_geojson(rows, out)
        elif fmt == "csv":
            write_csv(rows, out, class_names=selection.model.class_names if selection.model else (),
                      with_empty=include_empty)
        elif fmt == "json":
            write_json(rows, out)
        else:
            _write_table(selection, rows)


def _write_table(selection: Selection, rows: Iterable[Answer]) -> None:
    from core.queries import EmptyAnswer, TileAnswer

    header = f"{'tile':<22} {'label':<24} {'confidence':>10}  {'model':<12}  job"
    typer.echo(header)
    count = unsure = 0
    for answer in rows:
        job = "" if answer.job_id is None else str(answer.job_id)
        label, confidence = ("(empty)", "") if isinstance(answer, EmptyAnswer) else (
            answer.label, f"{answer.confidence:.3f}{'?' if answer.uncertain else ''}")
        typer.echo(f"{answer.tile!s:<22} {label:<24} {confidence:>10}  {answer.model_hash[:12]}  {job}")
        count += 1
        unsure += isinstance(answer, TileAnswer) and answer.uncertain
    typer.echo(f"{count} tile{'s' if count != 1 else ''} ({selection.describe()}; {selection.tiles})")
    if unsure:
        typer.echo(f"?: {unsure} uncertain (less confident than their job's --uncertain-below)")


def register(app: typer.Typer) -> None:
    query = typer.Typer(help="Ask the results: one tile, the tile under a point, or every tile of a bbox.",
                        no_args_is_help=True)
    query.command("tile")(tile)
    query.command("point")(point)
    query.command("bbox")(bbox)
    app.add_typer(query, name="query")
