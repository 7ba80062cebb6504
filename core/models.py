"""The registered models as ``tileclass models`` lists and manages them: result counts, names, removal.

A name (``models name``) is a second handle for a model, usable wherever a model is taken (``--model lisbon-v2``,
resolved by ``core.registry.find_registered`` before hashes). Names are unique, plain (letters, digits, ``.``, ``_``,
``-``) and never look like a hash prefix (six or more hex digits), so a name and a prefix are never confused.
Removing a model only unregisters it, and only while nothing refers to it: no job and no stored tile row.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import TileclassError
from core.queries.types import aware
from core.registry import find_registered
from core.schema import EmptyTile, FailedTile, Job, Model, TileResult

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HASH_LIKE = re.compile(r"^[0-9a-fA-F]{6,}$")


@dataclass(frozen=True)
class ModelRow:
    hash: str
    name: str | None
    arch: str
    class_names: list[str]
    image_size: int
    val_accuracy: float | None
    created_at: datetime
    results: int
    path: str
    metrics: dict[str, Any]

    def as_dict(self, *, full: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "hash": self.hash, "name": self.name, "arch": self.arch, "classes": len(self.class_names),
            "image_size": self.image_size, "val_accuracy": self.val_accuracy,
            "registered_at": self.created_at.isoformat(), "results": self.results}
        if full:
            sidecar = Path(self.path).with_suffix(".json")
            data |= {"class_names": self.class_names, "path": self.path, "metrics": self.metrics,
                     "metrics_path": str(sidecar), "train_config": _train_config(sidecar),
                     "temperature": _temperature(sidecar)}
        return data


def list_models(session: Session) -> list[ModelRow]:
    """Every registered model, newest first, with how many results it has (one grouped query)."""
    counts = (select(TileResult.model_hash, func.count().label("n")).group_by(TileResult.model_hash)
              .subquery())
    rows = session.execute(select(Model, func.coalesce(counts.c.n, 0))
                           .outerjoin(counts, counts.c.model_hash == Model.hash)
                           .order_by(Model.created_at.desc(), Model.hash))
    return [_row(model, int(results)) for model, results in rows]


def model_row(session: Session, *, ref: str) -> ModelRow:
    model = find_registered(session, ref=ref)
    results = session.scalar(select(func.count()).select_from(TileResult).where(TileResult.model_hash == model.hash))
    return _row(model, int(results or 0))


def name_model(session: Session, *, ref: str, name: str) -> Model:
    """Give a model a unique name; ``TileclassError`` in one line for a name that is not allowed or taken."""
    model = find_registered(session, ref=ref)
    if not NAME.match(name):
        raise TileclassError(f"model name {name!r} must be letters, digits, '.', '_' or '-' (at most 64)")
    if HASH_LIKE.match(name):
        raise TileclassError(f"model name {name!r} could be read as a hash prefix (six or more hex digits): "
                             "choose a name with another letter in it")
    holder = session.scalars(select(Model).where(Model.name == name)).first()
    if holder is not None and holder.hash != model.hash:
        raise TileclassError(f"model name {name!r} is already model {holder.hash[:12]}'s")
    model.name = name
    session.flush()
    return model


def remove_model(session: Session, *, ref: str) -> Model:
    """Unregister a model that nothing refers to (its checkpoint files stay where they are)."""
    model = find_registered(session, ref=ref)
    users = {what: int(session.scalar(select(func.count()).select_from(table).where(table.model_hash == model.hash))
                       or 0)
             for what, table in (("job", Job), ("result", TileResult), ("failed tile", FailedTile),
                                 ("empty tile", EmptyTile))}
    if any(users.values()):
        held = ", ".join(f"{n:,} {what}{'s' if n != 1 else ''}" for what, n in users.items() if n)
        raise TileclassError(f"model {model.hash[:12]} is still referred to by {held}: it stays registered")
    session.delete(model)
    session.flush()
    return model


def _row(model: Model, results: int) -> ModelRow:
    accuracy = (model.metrics or {}).get("val_accuracy")
    return ModelRow(model.hash, model.name, model.arch, list(model.class_names), model.image_size,
                    float(accuracy) if isinstance(accuracy, int | float) else None, aware(model.created_at), results,
                    model.path, dict(model.metrics or {}))


def _temperature(sidecar: Path) -> float | None:
    """The softmax temperature the sidecar mirrors (1.0 for sidecars from before temperatures; None: unreadable)."""
    try:
        value = json.loads(sidecar.read_text()).get("temperature", 1.0)
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def _train_config(sidecar: Path) -> dict[str, Any] | None:
    try:
        config = json.loads(sidecar.read_text()).get("train_config")
    except (OSError, ValueError, AttributeError):
        return None
    return config if isinstance(config, dict) else None


def move_name(session: Session, *, from_hash: str, to_hash: str) -> str | None:
    """Give the model ``to_hash`` the name the model ``from_hash`` has, which loses it (both stay registered, the
    old one addressable by its hash); the name moved, or None when ``from_hash`` is unregistered or unnamed."""
    source, target = session.get(Model, from_hash), session.get(Model, to_hash)
    if source is None or source.name is None or target is None or from_hash == to_hash:
        return None
    name = source.name
    source.name = None
    session.flush()  # names are unique: the old model lets go of it before the new one takes it
    target.name = name
    session.flush()
    return name
