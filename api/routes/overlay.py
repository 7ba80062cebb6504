"""``/overlay/{model}/{z}/{x}/{y}.{format}``: a model's results as an XYZ layer at any zoom, as pictures (``.png``)
or vector tiles (``.mvt``), one route with a format suffix as TiTiler's tile factory has; and their TileJSON.

How a tile is drawn at, below and above the results' zoom is ``core.queries.overlay``'s to say. ``?groups=NAME``
draws a class grouping of the model (``core.class_groups``): one colour per group, and a ``group`` in each vector
feature. Tiles carry an
ETag of their bytes and ``Cache-Control: no-cache``: clients keep them and revalidate, and a tile changes (a new
ETag) as soon as new results change its picture.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy.orm import Session

from api.auth import TOKEN_PARAMETER
from api.deps import SessionDep
from api.job_layers import range_bounds
from api.map_schemas import TileJSON, VectorLayer
from api.overlay_mvt import LAYER, MAX_ZOOMS_OUT, overlay_mvt
from api.overlay_png import blank_png, overlay_png
from core.bbox import TileRange
from core.class_groups import ClassGrouping, load_grouping
from core.models.lookups import find_model
from core.queries import Selection, extents
from core.queries.overlay import OverlayRequest, overlay_grid, overlay_rows, results_zoom, vector_rows
from core.queries.selections import check_labels
from core.tiles import MAX_ZOOM, Tile

router = APIRouter(prefix="/overlay", tags=["overlay"])
ModelPath = Annotated[str, Path(description="The model: its name, hash or a unique hash prefix (6+).")]
ResultsZoom = Annotated[int | None, Query(ge=0, le=MAX_ZOOM, description="The zoom of the results to draw. "
                                          "Default: the finest zoom the model has results at.")]
Labels = Annotated[list[str], Query(description="Only these classes (repeat for several).")]
Uncertain = Annotated[bool | None, Query(description="true: only the uncertain answers (less confident than their "
                                         "job's enqueue --uncertain-below); false: none of them. Default: all.")]
Groups = Annotated[str | None, Query(description="A class grouping of the model ('tileclass groups add'): one "
                                     "colour per group, and a group property in vector tiles.")]
TileFormat = Annotated[Literal["png", "mvt"], Path(description="png (a picture) or mvt (a Mapbox Vector Tile).")]
MEDIA_TYPES = {"png": "image/png", "mvt": "application/vnd.mapbox-vector-tile"}


@router.get("/{model}/{z}/{x}/{y}.{format}", response_class=Response,
            responses={200: {"content": {media_type: {} for media_type in MEDIA_TYPES.values()}},
                       304: {"description": "Not modified"}})
def overlay_tile(model: ModelPath, z: int, x: int, y: int, format: TileFormat, request: Request,
                 session: SessionDep, zoom: ResultsZoom = None, label: Labels = [],  # noqa: B006 (FastAPI's idiom)
                 uncertain: Uncertain = None, groups: Groups = None) -> Response:
    """One overlay tile: as a picture (png), the class colours of the model's results under it; as a vector tile
    (mvt), a square per result tile with its label, confidence and whether it is uncertain (empty beyond 6 zooms
    out)."""
    tile = Tile.checked(z, x, y)
    info = find_model(session, ref=model)
    check_labels(session, labels=label, model=info)
    drawn_zoom = zoom if zoom is not None else results_zoom(session, model_hash=info.hash)
    wanted = OverlayRequest(info, drawn_zoom if drawn_zoom is not None else z, tile, tuple(dict.fromkeys(label)),
                            uncertain, _grouping(session, groups, model_hash=info.hash))
    body = DRAWN[format](session, wanted, drawn_zoom is not None)
    return cached_tile(body, MEDIA_TYPES[format], request)


def _png(session: Session, wanted: OverlayRequest, has_results: bool) -> bytes:
    """The picture of ``wanted`` (blank when the model has no results to draw)."""
    if not has_results:
        return blank_png()
    return overlay_png(overlay_grid(overlay_rows(session, request=wanted), request=wanted))


def _mvt(session: Session, wanted: OverlayRequest, has_results: bool) -> bytes:
    """The vector tile of ``wanted`` (empty when the model has no results, or more than 6 zooms out)."""
    rows = vector_rows(session, request=wanted) if has_results and wanted.zooms_out <= MAX_ZOOMS_OUT else []
    return overlay_mvt(rows, request=wanted)


def _grouping(session: Session, name: str | None, *, model_hash: str) -> ClassGrouping | None:
    """The grouping asked for, checked to be the model's (400 otherwise, 404 for an unknown one)."""
    return load_grouping(session, name, model_hash=model_hash) if name is not None else None


DRAWN: dict[str, Callable[[Session, OverlayRequest, bool], bytes]] = {"png": _png, "mvt": _mvt}


def cached_tile(body: bytes, media_type: str, request: Request) -> Response:
    """``body`` with an ETag of its bytes, or 304 when the client already holds them."""
    etag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


# Without results there are no bounds nor center, and vector_layers is for mvt: those keys are left out, not null.
@router.get("/{model}/tilejson.json", response_model_exclude_none=True)
def tilejson(model: ModelPath, request: Request, session: SessionDep, zoom: ResultsZoom = None,
             label: Labels = [], groups: Groups = None,  # noqa: B006
             format: Annotated[Literal["png", "mvt"], Query(description="png (raster tiles) or mvt (vector "
                                                            "tiles)")] = "png") -> TileJSON:
    """TileJSON 3.0.0 for the overlay, so QGIS, MapLibre or Leaflet add it as an XYZ layer."""
    info = find_model(session, ref=model)
    check_labels(session, labels=label, model=info)
    grouping = _grouping(session, groups, model_hash=info.hash)
    drawn_zoom = zoom if zoom is not None else results_zoom(session, model_hash=info.hash)
    query: list[tuple[str, Any]] = [("zoom", drawn_zoom)] if drawn_zoom is not None else []
    query += [("label", name) for name in dict.fromkeys(label)]
    query += [("groups", grouping.name)] if grouping is not None else []
    token = request.query_params.get(TOKEN_PARAMETER)
    if token is not None:  # a client that could only be given this URL needs the token in the tiles' URL too
        query.append((TOKEN_PARAMETER, token))
    template = f"{request.base_url}overlay/{info.hash}/{{z}}/{{x}}/{{y}}.{format}" + (
        f"?{urlencode(query)}" if query else "")
    document = TileJSON(tilejson="3.0.0", name=f"tileclass {info.hash[:12]}", version="1.0.0", scheme="xyz",
                        description=f"classes of model {info.hash[:12]}: {', '.join(info.class_names)}",
                        attribution="tileclass", tiles=[template], minzoom=0, maxzoom=MAX_ZOOM)
    if format == "mvt":
        document.minzoom = max((drawn_zoom or 0) - MAX_ZOOMS_OUT, 0)
        document.vector_layers = [VectorLayer(id=LAYER, minzoom=document.minzoom, maxzoom=MAX_ZOOM, fields={
            "label": "String", "confidence": "Number", "uncertain": "Boolean", "z": "Number", "x": "Number",
            "y": "Number", **({"group": "String"} if grouping is not None else {})})]
    spans = extents(session, selection=Selection(info, tiles=TileRange.whole(drawn_zoom))) \
        if drawn_zoom is not None else []
    if spans and drawn_zoom is not None:
        bounds = range_bounds(spans[0][0])
        document.bounds = bounds.as_list()
        document.center = [(bounds.west + bounds.east) / 2, (bounds.south + bounds.north) / 2, drawn_zoom]
    return document
