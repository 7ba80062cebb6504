"""Summaries of a selection: counts and shares per class (and how many of them are uncertain), failures with their
commonest reasons, empty tiles by reason, and the models that have results there."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session

from core.db import aware
from core.queries.selections import selected
from core.queries.types import ClassCount, ModelCount, Selection, Summary
from core.schema import EmptyTile, FailedTile, Model, TileResult
from core.tile_area import row_area_km2


def summarize(session: Session, *, selection: Selection, reasons: int = 5) -> Summary:
    """Count a selection's results per class (every class of its model, in the model's order) and its failures."""
    counts, uncertain, areas = _class_counts(session, selection)
    total = sum(counts.values())
    order = list(selection.model.class_names) if selection.model else []
    order += sorted(set(counts) - set(order))
    classes = [ClassCount(label, counts.get(label, 0), counts.get(label, 0) / total if total else 0.0,
                          uncertain.get(label, 0), areas.get(label, 0.0) if areas is not None else None)
               for label in order]
    failure_where = selected(selection, FailedTile)
    failed = int(session.scalar(select(func.count()).select_from(FailedTile).where(*failure_where)) or 0)
    top = session.execute(
        select(FailedTile.reason, func.count().label("n")).where(*failure_where)
        .group_by(FailedTile.reason).order_by(func.count().desc(), FailedTile.reason).limit(reasons)
    ).all()
    models = session.execute(
        select(Model.hash, func.count(), Model.created_at).select_from(TileResult)
        .join(Model, Model.hash == TileResult.model_hash)
        .where(*selected(selection, by_model=False)).group_by(Model.hash, Model.created_at)
        .order_by(Model.created_at.desc())
    ).all()
    empty = session.execute(
        select(EmptyTile.reason, func.count()).where(*selected(selection, EmptyTile))
        .group_by(EmptyTile.reason).order_by(func.count().desc(), EmptyTile.reason)
    ).all()
    chosen = selection.model_hash
    return Summary(selection, total, classes, failed, [(r, int(n)) for r, n in top],
                   [ModelCount(h, int(n), aware(c), h == chosen) for h, n, c in models],
                   sum(int(n) for _, n in empty), [(r, int(n)) for r, n in empty], sum(uncertain.values()))


def _class_counts(session: Session, selection: Selection
                  ) -> tuple[dict[str, int], dict[str, int], dict[str, float] | None]:
    """Tiles, uncertain answers and ground area (km²) per class; areas are None if any tile has no coordinates.

    A tile's area depends only on its zoom and row, so the database groups by (class, z, y) and Python adds up
    ``count * row_area_km2(z, y)``: a few thousand rows for a job of millions of tiles, on SQLite and PostgreSQL alike.
    """
    rows = session.execute(
        select(TileResult.label, TileResult.z, TileResult.y, func.count(),
               func.sum(cast(TileResult.uncertain, Integer)))
        .where(*selected(selection)).group_by(TileResult.label, TileResult.z, TileResult.y)
    ).all()
    counts: dict[str, int] = defaultdict(int)
    uncertain: dict[str, int] = defaultdict(int)
    areas: dict[str, float] | None = defaultdict(float)
    for label, z, y, n, unsure in rows:
        counts[label] += int(n)
        uncertain[label] += int(unsure or 0)
        if z is None or y is None:
            areas = None  # a path-only tile: the map has no ground area to report
        elif areas is not None:
            areas[label] += int(n) * row_area_km2(int(z), int(y))
    return dict(counts), dict(uncertain), dict(areas) if areas is not None else None
