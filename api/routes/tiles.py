"""``/api/tiles/{z}/{x}/{y}`` and ``/api/point``: what ``tileclass query tile --json`` prints, or 404 when the tile
has neither a result nor an empty record (the body then says so in the same document, and its ``detail`` says where
the model's results are, as the command line's hint does)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deps import SessionDep
from api.schemas import TileNotFound, TileReport
from core.queries import report_tile
from core.tiles import MAX_ZOOM, Tile

router = APIRouter(prefix="/api", tags=["tiles"])
ModelQuery = Annotated[str | None, Query(description="Model name, hash or unique hash prefix (6+). Default: the "
                                         "latest registered model with a record of the tile.")]
TopK = Annotated[int, Query(ge=0, le=1000, description="How many of the most probable classes to list.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": TileNotFound,
                                                     "description": "Neither classified nor found empty."}}


# The report keeps only the keys core gave it (exclude_unset): no "top" with top_k=0.
@router.get("/tiles/{z}/{x}/{y}", response_model=TileReport, response_model_exclude_unset=True,
            responses=NOT_FOUND)
def tile(z: int, x: int, y: int, session: SessionDep, model: ModelQuery = None, top_k: TopK = 3) -> Any:
    """One tile's label, confidence and top classes, or its empty record."""
    return _answer(session, Tile.checked(z, x, y), model, top_k, None)


@router.get("/point", response_model=TileReport, response_model_exclude_unset=True, responses=NOT_FOUND)
def point(session: SessionDep,
          lon: Annotated[float, Query(ge=-180, le=180, description="Longitude, WGS84 degrees.")],
          lat: Annotated[float, Query(ge=-85.0511, le=85.0511, description="Latitude, WGS84 degrees.")],
          zoom: Annotated[int, Query(ge=0, le=MAX_ZOOM, description="Zoom of the tile to read.")],
          model: ModelQuery = None, top_k: TopK = 3) -> Any:
    """The same as ``/api/tiles``, for the tile of ``zoom`` under a point."""
    return _answer(session, Tile.at_point(lon, lat, zoom), model, top_k, (lon, lat))


def _answer(session: SessionDep, wanted: Tile, model: str | None, top_k: int,
            point: tuple[float, float] | None) -> Any:
    report = report_tile(session, tile=wanted, model_ref=model)
    document: dict[str, Any] = report.as_dict(top_k=top_k)
    if not report.found:
        by = f"by model {report.model_hash[:12]}" if report.model_hash else "by any model"
        hint = report.hint(point=point)
        detail = f"tile {wanted} is not classified {by}" + (f"; {hint}" if hint else "")
        return JSONResponse({"detail": detail, **document}, status_code=404)
    return document
