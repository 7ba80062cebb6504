"""Finding registered models: by name, hash or unique hash prefix, every one with its result count, the newest.

A model is addressed by its name (``models name``) first, then by its hash or a unique prefix of at least six
characters; names never look like a prefix (``core.models.names``), so the two never meet. Everything here returns
``ModelInfo``; ``find_row`` is the one way to the table's row, for the functions of this package that change it.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db import aware
from core.errors import NotFoundError
from core.models.info import ModelInfo
from core.schema import Model, TileResult

ACCEPTS = "a model name or a registered model hash"


def info_of(model: Model, *, results: int | None = None) -> ModelInfo:
    """The read shape of a ``models`` row (and its result count, where counted)."""
    return ModelInfo(model.hash, model.name, model.arch, tuple(model.class_names), model.image_size, model.path,
                     dict(model.metrics or {}), aware(model.created_at), results)


def find_row(session: Session, *, ref: str, accepts: str = ACCEPTS) -> Model:
    """A registered model's row by its name, its hash or a unique prefix of at least 6 characters.

    Args:
        ref: the name, hash or prefix the user typed.
        accepts: what the user could have typed, for the error message.

    Raises:
        NotFoundError: in one line, naming the few newest registered models.
    """
    named = session.scalars(select(Model).where(Model.name == ref.strip())).first()
    if named is not None:
        return named
    ref = ref.strip().lower()
    matches = list(session.scalars(select(Model).where(Model.hash.startswith(ref, autoescape=True)).limit(2)))
    if len(matches) == 1 and (len(ref) >= 6 or matches[0].hash == ref):
        return matches[0]
    recent = session.execute(select(Model.hash, Model.name).order_by(Model.created_at.desc()).limit(5))
    known = ", ".join(name or digest[:12] for digest, name in recent) or "none"
    problem = "is ambiguous" if len(matches) > 1 else f"is not {accepts}"
    raise NotFoundError(f"model {ref!r} {problem} (registered: {known})")


def find_model(session: Session, *, ref: str, accepts: str = ACCEPTS, count_results: bool = False) -> ModelInfo:
    """A registered model by its name, its hash or a unique prefix of at least 6 characters (see ``find_row``),
    with its result count if ``count_results``."""
    model = find_row(session, ref=ref, accepts=accepts)
    if not count_results:
        return info_of(model)
    results = session.scalar(select(func.count()).select_from(TileResult).where(TileResult.model_hash == model.hash))
    return info_of(model, results=int(results or 0))


def get_model(session: Session, *, model_hash: str) -> ModelInfo | None:
    """The model registered under exactly ``model_hash``, or None."""
    model = session.get(Model, model_hash)
    return info_of(model) if model is not None else None


def is_registered(session: Session, *, model_hash: str) -> bool:
    return session.get(Model, model_hash) is not None


def model_uncertain_below(session: Session, *, model_hash: str) -> float | None:
    """The registered model's own bound for uncertain answers (its sidecar's ``uncertain_below``), if it has one."""
    model = get_model(session, model_hash=model_hash)
    return model.uncertain_below if model is not None else None


def list_models(session: Session) -> list[ModelInfo]:
    """Every registered model, newest first, with how many results it has (one grouped query)."""
    counts = (select(TileResult.model_hash, func.count().label("n")).group_by(TileResult.model_hash)
              .subquery())
    rows = session.execute(select(Model, func.coalesce(counts.c.n, 0))
                           .outerjoin(counts, counts.c.model_hash == Model.hash)
                           .order_by(Model.created_at.desc(), Model.hash))
    return [info_of(model, results=int(results)) for model, results in rows]


def newest_model(session: Session) -> ModelInfo | None:
    """The most recently registered model, or None when none is."""
    model = session.scalars(select(Model).order_by(Model.created_at.desc(), Model.hash).limit(1)).first()
    return info_of(model) if model is not None else None
