"""Where a model's results are, and the hint for a tile or a point that has none.

A tile that is not classified is most often asked for at the wrong place: another zoom, x and y swapped (``query
tile Z/Y/X``), or longitude and latitude swapped (``query point``). ``ResultsExtent`` holds, per zoom, the tile range
and the WGS84 box that a model's results span, and ``ResultsExtent.hint`` turns it into the one sentence that
``tileclass query tile`` / ``point`` print and that ``/api/tiles`` and ``/api/point`` put in their 404, so the
command line and the HTTP API say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.bbox import TileRange
from core.tiles import Tile


@dataclass(frozen=True, slots=True)
class ZoomExtent:
    """The range of tiles of one zoom that the results span."""

    tiles: TileRange

    def as_dict(self) -> dict[str, Any]:
        t = self.tiles
        return {"zoom": t.zoom, "x": [t.min_x, t.max_x], "y": [t.min_y, t.max_y], "bbox": t.bounds().as_list()}

    def describe(self) -> str:
        t, box = self.tiles, self.tiles.bounds()
        return (f"zoom {t.zoom}: x {t.min_x}..{t.max_x}, y {t.min_y}..{t.max_y} (lon {box.west:.5f}..{box.east:.5f}, "
                f"lat {box.south:.5f}..{box.north:.5f})")


@dataclass(frozen=True, slots=True)
class ResultsExtent:
    """Per zoom, where ``model_hash``'s results are (None: any model's)."""

    model_hash: str | None
    zooms: tuple[ZoomExtent, ...]

    def as_list(self) -> list[dict[str, Any]]:
        return [zone.as_dict() for zone in self.zooms]

    def hint(self, tile: Tile, *, point: tuple[float, float] | None = None) -> str:
        """Where to look instead of ``tile`` (asked for as the tile under ``point``, lon and lat, if given)."""
        owner = f"model {self.model_hash[:12]}" if self.model_hash else "any model"
        if not self.zooms:
            return f"there is no result of {owner} yet: 'tileclass status' shows the jobs"
        zone = next((zone for zone in self.zooms if zone.tiles.zoom == tile.z), None)
        if zone is None:
            where = "; ".join(zone.describe() for zone in self.zooms)
            return f"no result of {owner} at zoom {tile.z}; the results are at {where}"
        assert tile.x is not None and tile.y is not None  # a tile with a zoom has coordinates
        if zone.tiles.holds(tile.x, tile.y):
            return (f"{tile} lies within the results of {owner} at {zone.describe()}, but has none itself: "
                    "not classified yet, or failed ('tileclass failures JOB' lists why)")
        return f"{tile} lies outside the results of {owner} at {zone.describe()}{_swapped(zone, tile, point)}"


def _swapped(zone: ZoomExtent, tile: Tile, point: tuple[float, float] | None) -> str:
    """A guess at the usual mistake, when undoing it lands inside the results: x and y, or lon and lat, swapped."""
    assert tile.x is not None and tile.y is not None
    if point is not None:
        lon, lat = point
        box = zone.tiles.bounds()
        if box.west <= lat <= box.east and box.south <= lon <= box.north:
            return f"; lon and lat swapped? the point (lon {lat:g}, lat {lon:g}) is inside"
    elif zone.tiles.holds(tile.y, tile.x):
        return f"; x and y swapped? {tile.z}/{tile.y}/{tile.x} is inside"
    return ""


def results_extent(session: Session, *, model_hash: str | None = None) -> ResultsExtent:
    """Per zoom, the tile range that ``model_hash``'s results span (None: any model's).

    A miss must stay cheap however many results there are, so this never reads every row as a grouped ``min``/
    ``max`` would (1 s for a million rows on SQLite): it walks the index instead (PostgreSQL's "loose index scan"),
    from one zoom to the next and one column to the next, with a few index seeks per column that holds results
    (``uq_tile_results_model_zxy``, or ``ix_tile_results_zxy`` for any model).
    """
    model = "model_hash = :model" if model_hash is not None else "1 = 1"
    values = {"model": model_hash} if model_hash is not None else {}
    zooms = session.scalars(text(_ZOOMS.format(model=model)), values).all()
    spans = []
    for zoom in zooms:
        min_x, max_x, min_y, max_y = session.execute(text(_COLUMNS.format(model=model)), values | {"z": zoom}).one()
        spans.append(ZoomExtent(TileRange(zoom, min_x, max_x, min_y, max_y)))
    return ResultsExtent(model_hash, tuple(spans))


# The zooms with a result: the smallest, then the smallest above it, each one index seek.
_ZOOMS = """
WITH RECURSIVE zooms(z) AS (
    SELECT min(z) FROM tile_results WHERE {model} AND z > -1
    UNION ALL
    SELECT (SELECT min(z) FROM tile_results WHERE {model} AND z > zooms.z) FROM zooms WHERE zooms.z IS NOT NULL
)
SELECT z FROM zooms WHERE z IS NOT NULL ORDER BY z
"""
# One zoom's columns with a result, walked the same way, and each column's first and last row.
_COLUMNS = """
WITH RECURSIVE columns(x) AS (
    SELECT min(x) FROM tile_results WHERE {model} AND z = :z
    UNION ALL
    SELECT (SELECT min(x) FROM tile_results WHERE {model} AND z = :z AND x > columns.x)
    FROM columns WHERE columns.x IS NOT NULL
)
SELECT min(x), max(x),
       min((SELECT min(y) FROM tile_results WHERE {model} AND z = :z AND x = columns.x)),
       max((SELECT max(y) FROM tile_results WHERE {model} AND z = :z AND x = columns.x))
FROM columns WHERE x IS NOT NULL
"""
