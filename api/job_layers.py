"""What the map page needs to show a job: its model and classes (colours and counts), the zoom of its tiles, its
extent, and the URL templates of its imagery and overlay tiles.

The zoom is the finest the job asked for (``--zoom``), else the finest its results are at. The extent is the
region it asked for (its bbox or polygon's), else the tiles it recorded (results, failures and empty tiles).
"""

from __future__ import annotations

from typing import Any

import mercantile
from sqlalchemy.orm import Session

from core.bbox import BBox, TileRange
from core.errors import TileError
from core.jobs import get_job
from core.palette import class_colour, hex_colour
from core.queries import extents, select_results, summarize
from core.region import Region


def job_layers(session: Session, *, job_id: int, base_url: str) -> dict[str, Any]:
    """The page's description of job ``job_id`` (``base_url``: where this server is reached, ending in ``/``)."""
    job = get_job(session, job_id)
    selection = select_results(session, job_id=job_id)
    model = selection.model
    summary = summarize(session, selection=selection)
    region = _recorded_region(job.region)
    spans = extents(session, selection=selection) if region is None or region.zooms is None or \
        region.extent is None else []
    zoom = max(region.zooms) if region is not None and region.zooms else (
        max(spans, key=lambda span: (span[1], span[0].zoom))[0].zoom if spans else None)
    bounds = _bounds(region, spans, zoom)
    counts = {entry.label: entry.count for entry in summary.classes}
    names = list(model.class_names) if model is not None else []
    names += [label for label in counts if label not in names]
    layers: dict[str, Any] = {
        "job": job_id, "kind": job.kind, "source": job.source.get("name"), "zoom": zoom,
        "bounds": bounds.as_list() if bounds is not None else None,
        "model": model.hash if model is not None else None,
        "classes": [{"label": name, "colour": hex_colour(class_colour(i)), "count": counts.get(name, 0)}
                    for i, name in enumerate(names)],
        "classified": summary.classified, "failed": summary.failed, "empty": summary.empty,
        "imagery": f"{base_url}imagery/{job_id}/{{z}}/{{x}}/{{y}}",
        "overlay": None, "tilejson": None,
    }
    if model is not None and zoom is not None:
        layers["overlay"] = f"{base_url}overlay/{model.hash}/{{z}}/{{x}}/{{y}}.png?zoom={zoom}"
        layers["tilejson"] = f"{base_url}overlay/{model.hash}/tilejson.json?zoom={zoom}"
    return layers


def _recorded_region(record: dict[str, Any]) -> Region | None:
    try:
        return Region.from_record(record)
    except TileError:  # its GeoJSON changed or is gone: fall back to the tiles the job recorded
        return None


def _bounds(region: Region | None, spans: list[tuple[TileRange, int]], zoom: int | None) -> BBox | None:
    if region is not None and region.extent is not None:
        return region.extent
    chosen = [span for span, _ in spans if span.zoom == zoom] or [span for span, _ in spans]
    if not chosen:
        return None
    return range_bounds(chosen[0])


def range_bounds(tiles: TileRange) -> BBox:
    """The WGS84 box that a range of tiles covers."""
    west, _, _, north = mercantile.bounds(tiles.min_x, tiles.min_y, tiles.zoom)
    _, south, east, _ = mercantile.bounds(tiles.max_x, tiles.max_y, tiles.zoom)
    return BBox.of([west, south, east, north])
