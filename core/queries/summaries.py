"""Summaries of a selection: counts and shares per class (and how many of them are uncertain), failures with their
commonest reasons, empty tiles by reason, and the models that have results there."""

from __future__ import annotations

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session

from core.db import aware
from core.queries.selections import selected
from core.queries.types import ClassCount, ModelCount, Selection, Summary
from core.schema import EmptyTile, FailedTile, Model, TileResult


def summarize(session: Session, *, selection: Selection, reasons: int = 5) -> Summary:
    """Count a selection's results per class (every class of its model, in the model's order) and its failures."""
    rows = session.execute(
        select(TileResult.label, func.count(), func.sum(cast(TileResult.uncertain, Integer)))
        .where(*selected(selection)).group_by(TileResult.label)
    ).all()
    counts = {label: int(n) for label, n, _ in rows}
    uncertain = {label: int(n) for label, _, n in rows}
    total = sum(counts.values())
    order = list(selection.model.class_names) if selection.model else []
    order += sorted(set(counts) - set(order))
    classes = [ClassCount(label, counts.get(label, 0), counts.get(label, 0) / total if total else 0.0,
                          uncertain.get(label, 0)) for label in order]
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
    chosen = selection.model.hash if selection.model else None
    return Summary(selection, total, classes, failed, [(r, int(n)) for r, n in top],
                   [ModelCount(h, int(n), aware(c), h == chosen) for h, n, c in models],
                   sum(int(n) for _, n in empty), [(r, int(n)) for r, n in empty], sum(uncertain.values()))
