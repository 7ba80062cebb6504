"""One tile's result and the result under a point.

A tile or a point is answered by the most recently registered model (``Model.created_at``, then the row's
``classified_at``) that has a result for that tile, unless ``model_hash`` names one. With a model it is an
equality lookup on ``uq_tile_results_model_zxy`` ``(model_hash, z, x, y)``; without one it uses
``ix_tile_results_zxy`` and orders the few models' rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from core.queries.types import (
    EMPTY_COLUMNS,
    RESULT_COLUMNS,
    EmptyAnswer,
    TileAnswer,
    answer_from_row,
    empty_from_row,
)
from core.schema import EmptyTile, Model, TileResult
from core.tiles import Tile

# Built once: composing a statement costs more than running a point lookup, so lookups only bind values.
_TILE_AT = (TileResult.z == bindparam("z"), TileResult.x == bindparam("x"), TileResult.y == bindparam("y"))
_LATEST_AT_TILE = (select(*RESULT_COLUMNS).join(Model, Model.hash == TileResult.model_hash).where(*_TILE_AT)
                   .order_by(Model.created_at.desc(), TileResult.classified_at.desc()).limit(1))
_MODEL_AT_TILE = select(*RESULT_COLUMNS).where(TileResult.model_hash == bindparam("model_hash"), *_TILE_AT).limit(1)


def _tile_lookup(tile: Tile, model_hash: str | None) -> tuple[Select[*tuple[Any, ...]], dict[str, Any]]:
    values: dict[str, Any] = {"z": tile.z, "x": tile.x, "y": tile.y}
    if model_hash is None:
        return _LATEST_AT_TILE, values
    return _MODEL_AT_TILE, values | {"model_hash": model_hash}


def tile_statement(tile: Tile, *, model_hash: str | None = None) -> Select[*tuple[Any, ...]]:
    """The lookup of one tile's result, values bound: that model's, or the latest registered model's."""
    stmt, values = _tile_lookup(tile, model_hash)
    return stmt.params(values)


def tile_result(session: Session, *, tile: Tile, model_hash: str | None = None) -> TileAnswer | None:
    """The result for ``tile`` (see the module docstring for which model), or None if it is not classified."""
    stmt, values = _tile_lookup(tile, model_hash)
    row = session.execute(stmt, values).first()
    return answer_from_row(row) if row is not None else None


def point_result(session: Session, *, lon: float, lat: float, zoom: int,
                 model_hash: str | None = None) -> TileAnswer | None:
    """The result for the tile of ``zoom`` under a WGS84 point, or None."""
    return tile_result(session, tile=Tile.at_point(lon, lat, zoom), model_hash=model_hash)


def empty_result(session: Session, *, tile: Tile, model_hash: str | None = None) -> EmptyAnswer | None:
    """Whether ``tile`` was found empty (that model's record, or the latest registered model's), or None."""
    stmt = select(*EMPTY_COLUMNS).join(Model, Model.hash == EmptyTile.model_hash).where(
        EmptyTile.z == tile.z, EmptyTile.x == tile.x, EmptyTile.y == tile.y)
    if model_hash is not None:
        stmt = stmt.where(EmptyTile.model_hash == model_hash)
    row = session.execute(stmt.order_by(Model.created_at.desc(), EmptyTile.found_at.desc()).limit(1)).first()
    return empty_from_row(row) if row is not None else None
