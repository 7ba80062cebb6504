"""What the map page needs to show a job: its model and classes (colours and counts), the zoom of its tiles, its
extent, the URL templates of its imagery and overlay tiles, and the class groupings of its model with each group's
colour (``core.class_groups``).

The zoom is the finest the job asked for (``--zoom``), else the finest its results are at. The extent is the
region it asked for (its bbox or polygon's), else the tiles it recorded (results, failures and empty tiles).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.map_schemas import Basemap, GroupingLayer, GroupLayer, JobLayers
from api.schemas import Summary
from core.bbox import BBox, TileRange
from core.class_groups import list_groupings
from core.errors import TileError
from core.jobs import get_job
from core.palette import class_colour, hex_colour
from core.queries import Selection, extents, select_results, summarize
from core.region import Region


def job_layers(session: Session, *, job_id: int, base_url: str, basemap: dict[str, str] | None) -> JobLayers:
    """The page's description of job ``job_id`` (``base_url``: where this server is reached, ending in ``/``;
    ``basemap``: the background layer, ``ServeConfig.basemap()``)."""
    job = get_job(session, job_id)
    selection = select_results(session, job_id=job_id)
    model = selection.model
    summary = Summary.model_validate(summarize(session, selection=selection).as_dict())
    zoom, bounds = _zoom_and_bounds(session, selection, _recorded_region(job.region))
    overlay = tilejson = None
    if model is not None and zoom is not None:
        overlay = f"{base_url}overlay/{model.hash}/{{z}}/{{x}}/{{y}}.png?zoom={zoom}"
        tilejson = f"{base_url}overlay/{model.hash}/tilejson.json?zoom={zoom}"
    return JobLayers(job=job_id, kind=job.kind, source=job.source.get("name"), zoom=zoom,
                     bounds=bounds.as_list() if bounds is not None else None,
                     model=model.hash if model is not None else None,
                     classes=summary.classes,  # in the model's order, each with its count and map colour
                     classified=summary.classified, failed=summary.failed.count, empty=summary.empty.count,
                     imagery=f"{base_url}imagery/{job_id}/{{z}}/{{x}}/{{y}}", overlay=overlay, tilejson=tilejson,
                     basemap=Basemap.model_validate(basemap) if basemap is not None else None,
                     groupings=_groupings(session, model_hash=model.hash) if model is not None else [])


def _groupings(session: Session, *, model_hash: str) -> list[GroupingLayer]:
    """The model's groupings; a group's colour is its place in its grouping, as the overlay draws it."""
    return [GroupingLayer(name=grouping.name, groups=[
                GroupLayer(group=group, classes=list(labels), colour=hex_colour(class_colour(i)))
                for i, (group, labels) in enumerate(grouping.pairs)])
            for grouping in list_groupings(session, model_hash=model_hash)]


def _zoom_and_bounds(session: Session, selection: Selection, region: Region | None) -> tuple[int | None,
                                                                                          BBox | None]:
    """The finest zoom the job asked for and its region's extent; what the job recorded where it asked for none."""
    if region is not None and region.zooms and region.extent is not None:
        return max(region.zooms), region.extent
    spans = extents(session, selection=selection)  # per zoom, the tiles it recorded and how many
    if not spans:
        return (max(region.zooms) if region is not None and region.zooms else None), None
    busiest, _ = max(spans, key=lambda span: (span[1], span[0].zoom))
    zoom = max(region.zooms) if region is not None and region.zooms else busiest.zoom
    recorded = next((span for span, _ in spans if span.zoom == zoom), busiest)
    return zoom, region.extent if region is not None and region.extent is not None else range_bounds(recorded)


def _recorded_region(record: dict[str, Any]) -> Region | None:
    try:
        return Region.from_record(record)
    except TileError:  # its GeoJSON changed or is gone: fall back to the tiles the job recorded
        return None


def range_bounds(tiles: TileRange) -> BBox:
    """The WGS84 box that a range of tiles covers."""
    return tiles.bounds()
