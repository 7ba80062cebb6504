"""``tileclass summary``: counts, shares and ground areas (km² on the WGS84 ellipsoid) per class (with their uncertain
answers), failed tiles and models, for a job or a region."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from core.errors import NotFoundError
from producer.commands.options import Bbox, Json, ModelRef, Zoom

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.orm import Session

    from core.queries import Summary
    from core.queries.group_summaries import GroupCount


def _latest_classify_job(session: Session) -> int:
    from core.job_states import JobKind
    from core.jobs import latest_job_id

    latest = latest_job_id(session, kind=JobKind.CLASSIFY)
    if latest is None:
        raise NotFoundError("there are no classify jobs yet: name a region with --bbox W,S,E,N --zoom Z")
    return latest


def _km2(area: float | None) -> str:
    """Small areas keep their decimals (a z18 tile is about 0.02 km²); tiles known only by a path have none."""
    if area is None:
        return "-"
    return f"{area:,.1f}" if area >= 100 else f"{area:,.3g}" if area else "0"


def _text(summary: Summary, groups: Sequence[GroupCount] = (), grouping: str | None = None) -> list[str]:
    lines = [f"Summary of {summary.selection.describe()}"]
    if summary.selection.tiles is not None:
        lines[0] += f" ({summary.selection.tiles})"
    width = max([len(c.label) for c in summary.classes] + [len(g.group) for g in groups] + [len("classified")])
    unsure = f"  of which {summary.uncertain:,} uncertain" if summary.uncertain else ""
    lines.append(f"  {'classified':<{width}}  {summary.classified:>10,}{unsure}")
    lines += [f"  {c.label:<{width}}  {c.count:>10,}  {c.share:>6.1%}  {_km2(c.area_km2):>14} km²"
              + (f"  {c.uncertain:,} uncertain" if c.uncertain else "") for c in summary.classes]
    if groups:
        lines.append(f"  by group ({grouping}):")
        lines += [f"  {g.group:<{width}}  {g.count:>10,}  {g.share:>6.1%}  {_km2(g.area_km2):>14} km²"
                  + (f"  {g.uncertain:,} uncertain" if g.uncertain else "") for g in groups]
    lines.append(f"  {'failed':<{width}}  {summary.failed:>10,}")
    lines += [f"    {count:>8,}  {reason}" for reason, count in summary.top_reasons]
    lines.append(f"  {'empty':<{width}}  {summary.empty:>10,}")
    lines += [f"    {count:>8,}  {reason}" for reason, count in summary.empty_reasons]
    if summary.models:
        lines.append("  models with results here:")
        lines += [f"    {m.hash[:12]}  {m.tiles:>10,} tiles  registered {m.created_at:%Y-%m-%d %H:%M}"
                  + ("  (shown)" if m.selected else "") for m in summary.models]
    return lines


def summary(
    job: int | None = typer.Argument(None, help="Job id (default: the latest classify job, unless --bbox is given)."),
    box: Bbox = None,
    zoom: Zoom = None,
    model: ModelRef = None,
    reasons: int = typer.Option(5, "--reasons", help="How many of the commonest failure reasons to list."),
    groups: str | None = typer.Option(None, "--groups", metavar="NAME", help="Also count tiles and km² per group "
                                      "of a class grouping of the model ('tileclass groups add')."),
    as_json: Json = False,
) -> None:
    """Counts, shares and areas (km²) per class, failed tiles with their commonest reasons, empty tiles, and the
    models involved.

    Summarises a job, or with --bbox and --zoom a region (with a job, --zoom keeps only that zoom).
    """
    from core.class_groups import load_grouping
    from core.queries import summarize
    from core.queries.group_summaries import grouped_document, summarize_groups
    from producer.commands.regions import selection_for
    from producer.session import open_session

    with open_session(read_only=True) as session:
        if job is None and box is None:
            job = _latest_classify_job(session)
        selection = selection_for(session, job=job, box=box, zoom=zoom, model=model)
        result = summarize(session, selection=selection, reasons=max(reasons, 0))
        grouping = None
        if groups is not None:
            grouping = load_grouping(session, groups, model_hash=selection.model_hash)
    if as_json:
        typer.echo(json.dumps(grouped_document(result.as_dict(), result.classes, grouping), indent=2))
    elif grouping is not None:
        typer.echo("\n".join(_text(result, summarize_groups(result.classes, grouping), grouping.name)))
    else:
        typer.echo("\n".join(_text(result)))


def register(app: typer.Typer) -> None:
    app.command("summary")(summary)
