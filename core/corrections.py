"""Corrections: the labels people give tiles (``tileclass correct``), kept beside the models' results.

A correction is ``(tile, label, model, author, time, origin)`` in ``tile_corrections``. The label must be one of the
classes of the model it is recorded for (matched ignoring case, stored in the model's own spelling), so it can be
trained on beside that model's predictions. A model's own result is never changed: ``query tile`` shows both, and
``dataset export`` takes the newest correction of a tile over the prediction.

Every correction is kept, so a tile's history says who changed their mind when. Recording the label a tile already
has as its newest correction (for the same model) adds nothing, so importing the same file twice is harmless. An
import is all or nothing: one label the model does not know and nothing is recorded.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session

from core.errors import NotFoundError, TileclassError
from core.models.info import ModelInfo
from core.models.lookups import find_model, newest_model
from core.schema import TileCorrection, utcnow
from core.tiles import Tile

KEYS_PER_QUERY = 500
ROWS_PER_INSERT = 2_000


class UnknownLabel(TileclassError):
    """A corrected label that is not one of the model's classes."""


@dataclass(frozen=True)
class Recorded:
    """What an import did: how many corrections it added, how many tiles already had that label, for which model."""

    recorded: int
    unchanged: int
    model_hash: str
    model_name: str | None
    author: str


def default_author() -> str:
    """The operating system's user name (``$USER``, ``$LOGNAME``, else the account's name)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no variable set and no passwd entry (some containers)
        return "unknown"


def correction_model(session: Session, *, ref: str | None) -> ModelInfo:
    """The model a correction is recorded for: the one ``ref`` names, else the newest registered model."""
    if ref:
        return find_model(session, ref=ref)
    newest = newest_model(session)
    if newest is None:
        raise NotFoundError("no model is registered, so there is no class list to check a label against: "
                            "'tileclass train' makes one, 'tileclass enqueue --model FILE.pt' registers one")
    return newest


def class_of(model: ModelInfo, label: str, *, where: str = "") -> str:
    """``label`` in the model's spelling (matched ignoring case and surrounding spaces); ``UnknownLabel`` listing
    the model's classes otherwise. ``where`` says where the label came from (``"row 7: "``)."""
    wanted = label.strip().casefold()
    for name in model.class_names:
        if name.casefold() == wanted:
            return str(name)
    raise UnknownLabel(f"{where}{label!r} is not a class of model {model.label}: its classes are "
                       f"{', '.join(model.class_names)} (--model picks another model)")


def correct_tile(session: Session, *, model: ModelInfo, tile: Tile, label: str, author: str) -> tuple[str, Recorded]:
    """Record one person's ``label`` for ``tile`` (``tileclass correct Z/X/Y CLASS`` and the web map's review):
    the label in the model's spelling (``UnknownLabel`` naming its classes otherwise) and what was recorded."""
    name = class_of(model, label)
    return name, record_corrections(session, model=model, labels=[(tile, name)], author=author)


def record_corrections(session: Session, *, model: ModelInfo, labels: Sequence[tuple[Tile, str]], author: str,
                       origin: str | None = None) -> Recorded:
    """Record ``(tile, label)`` pairs for ``model`` (labels already checked with ``class_of``; the last label of a
    tile listed twice wins), except where the tile's newest correction for the model already says so."""
    if not author.strip():
        raise TileclassError("--author must not be empty")
    wanted = {tile.xyz(): label for tile, label in labels}
    current = _newest_labels(session, model_hash=model.hash, keys=sorted(wanted))
    changed = [(key, label) for key, label in sorted(wanted.items()) if current.get(key) != label]
    now = utcnow()
    rows = [{"z": z, "x": x, "y": y, "label": label, "model_hash": model.hash, "author": author.strip()[:255],
             "origin": origin, "created_at": now} for (z, x, y), label in changed]
    for start in range(0, len(rows), ROWS_PER_INSERT):
        session.execute(insert(TileCorrection), rows[start : start + ROWS_PER_INSERT])
    return Recorded(len(rows), len(wanted) - len(rows), model.hash, model.name, author.strip())


def _newest_labels(session: Session, *, model_hash: str,
                   keys: list[tuple[int, int, int]]) -> dict[tuple[int, int, int], str]:
    """Each of ``keys``' newest correction label for the model (tiles without one are absent)."""
    newest: dict[tuple[int, int, int], str] = {}
    for start in range(0, len(keys), KEYS_PER_QUERY):
        part = keys[start : start + KEYS_PER_QUERY]
        rows = session.execute(
            select(TileCorrection.z, TileCorrection.x, TileCorrection.y, TileCorrection.label)
            .where(TileCorrection.model_hash == model_hash,
                   tuple_(TileCorrection.z, TileCorrection.x, TileCorrection.y).in_(part))
            .order_by(TileCorrection.created_at, TileCorrection.id))
        for z, x, y, label in rows:
            newest[(z, x, y)] = label  # ordered oldest first: the last one seen is the newest
    return newest
