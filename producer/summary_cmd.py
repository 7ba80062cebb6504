"""``tileclass summary``: counts and shares per class, failed tiles and models, for a job or a region."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from core.errors import NotFoundError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.queries import Summary


def _latest_classify_job(session: Session) -> int:
    from sqlalchemy import select

    from core.schema import Job, JobKind

    latest = session.scalar(select(Job.id).where(Job.kind == JobKind.CLASSIFY).order_by(Job.id.desc()).limit(1))
    if latest is None:
        raise NotFoundError("there are no classify jobs yet: name a region with --bbox W,S,E,N --zoom Z")
    return int(latest)


def _text(summary: Summary) -> list[str]:
    lines = [f"Summary of {summary.selection.describe()}"]
    if summary.selection.tiles is not None:
        lines[0] += f" ({summary.selection.tiles})"
    width = max([len(c.label) for c in summary.classes] + [len("classified")])
    lines.append(f"  {'classified':<{width}}  {summary.classified:>10,}")
    lines += [f"  {c.label:<{width}}  {c.count:>10,}  {c.share:>6.1%}" for c in summary.classes]
    lines.append(f"  {'failed':<{width}}  {summary.failed:>10,}")
    lines += [f"    {count:>8,}  {reason}" for reason, count in summary.top_reasons]
    if summary.models:
        lines.append("  models with results here:")
        lines += [f"    {m.hash[:12]}  {m.tiles:>10,} tiles  registered {m.created_at:%Y-%m-%d %H:%M}"
                  + ("  (shown)" if m.selected else "") for m in summary.models]
    return lines


def summary(
    job: int | None = typer.Argument(None, help="Job id (default: the latest classify job, unless --bbox is given)."),
    box: str | None = typer.Option(None, "--bbox", metavar="W,S,E,N", help="Summarise a WGS84 bbox instead of a "
                                   "job, e.g. -9.47,38.82,-9.43,38.86 (needs --zoom)."),
    zoom: int | None = typer.Option(None, "--zoom", "-z", help="Zoom level of the bbox's tiles (0..24); with a "
                                    "job, only that zoom."),
    model: str | None = typer.Option(None, "--model", help="Model hash or unique 6+ character prefix. Default: "
                                     "the job's model, else the latest registered model with results in the bbox."),
    reasons: int = typer.Option(5, "--reasons", help="How many of the commonest failure reasons to list."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Counts and shares per class, failed tiles with their commonest reasons, and the models involved."""
    from core.db import session_scope
    from core.migrate import ensure_schema
    from core.queries import BBox, select_results, summarize

    region = BBox.parse(box) if box is not None else None
    ensure_schema()
    with session_scope(read_only=True) as session:
        if job is None and region is None:
            job = _latest_classify_job(session)
        selection = select_results(session, job_id=job, bbox=region, zoom=zoom, model_ref=model)
        result = summarize(session, selection=selection, reasons=max(reasons, 0))
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        typer.echo("\n".join(_text(result)))


def register(app: typer.Typer) -> None:
    app.command("summary")(summary)
