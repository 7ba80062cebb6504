"""Changing the registry as ``tileclass models`` and ``calibrate`` do: naming a model, moving a name, unregistering.

A name (``models name``) is a second handle for a model, usable wherever a model is taken (``--model lisbon-v2``,
found by ``core.models.lookups.find_model`` before hashes). Names are unique and plain (``core.models.names``).
Removing a model only unregisters it, and only while nothing refers to it: no job and no stored tile row.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import TileclassError
from core.models.info import ModelInfo
from core.models.lookups import find_row, info_of
from core.models.names import check_model_name
from core.schema import EmptyTile, FailedTile, Job, Model, TileResult


def name_model(session: Session, *, ref: str, name: str) -> ModelInfo:
    """Give a model a unique name; ``TileclassError`` in one line for a name that is not allowed or taken."""
    model = find_row(session, ref=ref)
    check_model_name(name)
    holder = session.scalars(select(Model).where(Model.name == name)).first()
    if holder is not None and holder.hash != model.hash:
        raise TileclassError(f"model name {name!r} is already model {holder.hash[:12]}'s")
    model.name = name
    session.flush()
    return info_of(model)


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


def remove_model(session: Session, *, ref: str) -> ModelInfo:
    """Unregister a model that nothing refers to (its checkpoint files stay where they are)."""
    model = find_row(session, ref=ref)
    users = {what: int(session.scalar(select(func.count()).select_from(table).where(table.model_hash == model.hash))
                       or 0)
             for what, table in (("job", Job), ("result", TileResult), ("failed tile", FailedTile),
                                 ("empty tile", EmptyTile))}
    if any(users.values()):
        held = ", ".join(f"{n:,} {what}{'s' if n != 1 else ''}" for what, n in users.items() if n)
        raise TileclassError(f"model {model.hash[:12]} is still referred to by {held}: it stays registered")
    removed = info_of(model)
    session.delete(model)
    session.flush()
    return removed
