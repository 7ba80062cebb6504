"""``/api/bbox`` and ``/api/summary``: a region's (or a job's) results, as ``tileclass query bbox`` and ``tileclass
summary`` give them.

``format=geojson`` and ``format=csv`` stream any number of tiles; ``format=json`` is one document, refused above
``TILECLASS_API_JSON_LIMIT`` tiles with a message naming the limit and the streaming formats.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.deps import ConfigDep, SessionDep
from api.schemas import RegionAnswers, Summary
from api.streams import streamed
from core.bbox import BBox
from core.class_groups import load_grouping
from core.errors import TileclassError
from core.export import csv_chunks, geojson_chunks
from core.queries import count_selected, iter_answers, select_results, summarize
from core.queries.group_summaries import grouped_document
from core.tiles import MAX_ZOOM

router = APIRouter(prefix="/api", tags=["regions"])
BboxQuery = Annotated[str, Query(description="WGS84 box W,S,E,N in degrees, e.g. -9.47,38.82,-9.43,38.86.")]
ZoomQuery = Annotated[int, Query(ge=0, le=MAX_ZOOM, description="Zoom of the tiles to read.")]
ModelQuery = Annotated[str | None, Query(description="Model name, hash or unique hash prefix (6+). Default: the "
                                         "job's model, else the latest registered model with results there.")]


FEATURES = {"type": "object", "description": "A GeoJSON FeatureCollection: per tile a Polygon, its answer (the "
             "json format's fields) as properties."}


@router.get("/bbox", response_model=None,
            responses={200: {"model": RegionAnswers, "description": "format=json: the answers; geojson, csv: streamed.",
                             "content": {"application/geo+json": {"schema": FEATURES},
                                         "text/csv; charset=utf-8": {}}}})
def bbox(session: SessionDep, config: ConfigDep, bbox: BboxQuery, zoom: ZoomQuery,
         label: Annotated[list[str], Query(description="Only this class (repeat for several).")] = [],  # noqa: B006
         min_confidence: Annotated[float | None, Query(ge=0, le=1, description="Only results at least this "
                                                       "confident.")] = None,
         job: Annotated[int | None, Query(description="Only the results of this job.")] = None,
         uncertain: Annotated[bool | None, Query(description="true: only the answers flagged uncertain (less "
                                                             "confident than their job's enqueue --uncertain-below); "
                                                             "false: none of them; unset: all.")] = None,
         model: ModelQuery = None,
         format: Annotated[Literal["geojson", "csv", "json"], Query(
             description="geojson or csv (streamed, any size), or json (one document, up to the limit).")] = "geojson",
         include_empty: Annotated[bool, Query(description="Also list empty tiles.")] = False,
         ) -> Any:
    """Every classified tile of a bbox at one zoom, filtered by class, confidence and uncertainty."""
    selection = select_results(session, job_id=job, bbox=BBox.parse(bbox), zoom=zoom, model_ref=model, labels=label,
                               min_confidence=min_confidence, uncertain=uncertain)
    if format == "json":
        found = count_selected(session, selection=selection, include_empty=include_empty)
        if found > config.json_limit:
            raise TileclassError(
                f"the region holds {found:,} tiles, more than the {config.json_limit:,} that format=json answers in "
                "one document (TILECLASS_API_JSON_LIMIT): use format=geojson or format=csv, which stream any size")
        return JSONResponse([answer.as_dict() for answer in iter_answers(session, selection=selection,
                                                                         include_empty=include_empty)])
    classes = selection.model.class_names if selection.model else ()

    def pieces(stream_session: Session) -> Iterator[str]:
        rows = iter_answers(stream_session, selection=selection, include_empty=include_empty)
        if format == "csv":
            return csv_chunks(rows, class_names=classes, with_empty=include_empty)
        return geojson_chunks(rows)

    return streamed(pieces, fmt=format, filename=f"tileclass-{zoom}-{bbox.replace(',', '_')}")


@router.get("/summary", response_model=Summary)
def summary(session: SessionDep,
            job: Annotated[int | None, Query(description="A job's results.")] = None,
            bbox: Annotated[str | None, Query(description="A region W,S,E,N (with zoom).")] = None,
            zoom: Annotated[int | None, Query(ge=0, le=MAX_ZOOM, description="The region's zoom.")] = None,
            model: ModelQuery = None,
            reasons: Annotated[int, Query(ge=0, le=100, description="Commonest failure reasons to list.")] = 5,
            groups: Annotated[str | None, Query(description="A class grouping of the model ('tileclass groups "
                                                            "add'): also tiles and km² per group.")] = None,
            ) -> dict[str, Any]:
    """Counts and shares per class (with their map colours and uncertain answers), failures and empty tiles, for a
    job or a region."""
    selection = select_results(session, job_id=job, bbox=BBox.parse(bbox) if bbox is not None else None, zoom=zoom,
                               model_ref=model)
    result = summarize(session, selection=selection, reasons=reasons)
    grouping = None if groups is None else load_grouping(session, groups, model_hash=selection.model_hash)
    return grouped_document(result.as_dict(), result.classes, grouping)
