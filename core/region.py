"""Regions of the map to classify: zoom levels, a WGS84 bounding box and/or a GeoJSON (multi)polygon.

The walk asks a region two questions, so that it never lists more of a tile tree than the region needs:

- ``columns(z)``: the x range worth opening at zoom ``z`` (None: every column);
- ``rows(z, x)``: the y ranges of column ``x`` that lie in the region (None: every row).

A bbox (``core.bbox.BBox``) takes the tiles it overlaps, as ``mercantile.tiles`` lists them. A polygon takes the
tiles whose interior meets it: column ``x``'s strip is intersected with the polygon, and each piece of positive
area gives one y range (a connected piece meets every row between its north and south edge, so the ranges are
exact).

``Region.describe()`` is what a job records: ``{"zooms": [...], "bbox": [w, s, e, n], "geojson": {...}}``, and for
a polygon its ``"extent"`` (the box it lies in), so that hosts without the GeoJSON file can bound the region.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import mercantile

from core.bbox import BBox
from core.errors import TileError
from core.tiles import MAX_LAT, check_zoom

_EDGE = 1e-11  # as in core.bbox: an edge on a tile boundary stays out of the next tile
Rows = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class GeoJsonArea:
    """A polygonal area read from a GeoJSON file, in WGS84 degrees."""

    path: str
    sha256: str
    geometry: Any = field(compare=False)  # shapely (Multi)Polygon


def load_geojson(path: Path) -> GeoJsonArea:
    """The union of the polygons in a GeoJSON geometry, Feature or FeatureCollection."""
    from shapely.errors import GEOSException
    from shapely.geometry import shape
    from shapely.ops import unary_union

    try:
        raw = path.read_bytes()
        document = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise TileError(f"GeoJSON {str(path)!r} is nested too deeply to be a GeoJSON document") from None
    except (OSError, ValueError) as exc:
        raise TileError(f"cannot read GeoJSON {str(path)!r}: {exc.__class__.__name__}: {exc}") from None
    try:
        geometries = list(_geometries(document, path))
    except RecursionError:
        raise TileError(f"GeoJSON {str(path)!r} nests collections too deeply") from None
    polygons = [g for g in geometries if isinstance(g, dict) and g.get("type") in ("Polygon", "MultiPolygon")]
    if not polygons:
        kinds = sorted({str(g.get("type")) for g in geometries if isinstance(g, dict)}) or ["nothing"]
        raise TileError(f"GeoJSON {str(path)!r} holds {', '.join(kinds)}: a Polygon or MultiPolygon is needed")
    try:
        geometry = unary_union([shape(g).buffer(0) for g in polygons])
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, GEOSException) as exc:
        raise TileError(f"GeoJSON {str(path)!r} has an invalid polygon: {exc}") from None
    if geometry.is_empty or geometry.area == 0:
        raise TileError(f"GeoJSON {str(path)!r}: the polygon is empty (no area), so the region has no tiles")
    return GeoJsonArea(str(path.resolve()), hashlib.sha256(raw).hexdigest(), geometry)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number GeoJSON allows")


def _members(document: dict[str, Any], key: str, path: Path) -> list[Any]:
    members = document.get(key) or []
    if not isinstance(members, list):
        raise TileError(f"GeoJSON {str(path)!r}: {key!r} must be a list, not {type(members).__name__}")
    return members


def _geometries(document: Any, path: Path) -> Iterable[Any]:
    kind = document.get("type") if isinstance(document, dict) else None
    if kind == "FeatureCollection":
        for feature in _members(document, "features", path):
            yield from _geometries(feature, path)
    elif kind == "Feature":
        yield document.get("geometry") or {}
    elif kind == "GeometryCollection":
        for geometry in _members(document, "geometries", path):
            yield from _geometries(geometry, path)
    elif isinstance(kind, str):
        yield document
    else:
        raise TileError(f"GeoJSON {str(path)!r} is not a GeoJSON object (no 'type')")


class Region:
    """Which tiles to classify: any mix of zooms, a bbox and a polygon (None everywhere: the whole tree)."""

    def __init__(self, *, zooms: Iterable[int] | None = None, bbox: BBox | None = None,
                 area: GeoJsonArea | None = None) -> None:
        self.zooms = frozenset(check_zoom(z) for z in zooms) if zooms else None
        self.bbox = bbox
        self.area = area
        self._shape: Any = None
        self._extent: BBox | None = self.bbox
        if area is not None:
            from shapely.geometry import box

            clip = box(*(self.bbox.as_list() if self.bbox else (-180.0, -MAX_LAT, 180.0, MAX_LAT)))
            self._shape = area.geometry.intersection(clip)
            if self._shape.is_empty or self._shape.area == 0:
                raise TileError("the region is empty: the GeoJSON polygon does not overlap the bbox / map")
            self._extent = BBox.of(self._shape.bounds)
        # The walk asks per directory and per file: answer from caches (a column's rows cost a polygon cut).
        self.rows = lru_cache(maxsize=65536)(self._rows)  # type: ignore[method-assign]
        self.columns = lru_cache(maxsize=64)(self._columns)  # type: ignore[method-assign]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Region | None:
        """The region a job recorded (``describe()``; None: everything); its GeoJSON must hold the same polygon."""
        zooms, bbox, geojson = record.get("zooms"), record.get("bbox"), record.get("geojson")
        if not (zooms or bbox or geojson):
            return None
        area = None
        if geojson:
            area = load_geojson(Path(geojson["path"]))
            if area.sha256 != geojson.get("sha256"):
                raise TileError(f"the GeoJSON file {geojson['path']!r} changed since the job was enqueued: the "
                                "region is no longer known; enqueue a new job")
        return cls(zooms=zooms, bbox=BBox.of(bbox) if bbox else None, area=area)

    @classmethod
    def outline(cls, record: dict[str, Any]) -> Region | None:
        """The zooms and box of the region a job recorded, without its polygon (None: everything).

        Every tile of the region lies in it, and no GeoJSON file is read: a worker, which may not have the file,
        checks a batch's tiles against it (``worker.admission``). A polygon's box is the ``extent`` it recorded.
        """
        zooms, box = record.get("zooms"), record.get("bbox") or record.get("extent")
        if not (zooms or box):
            return None
        return cls(zooms=zooms, bbox=BBox.of(box) if box else None)

    @property
    def extent(self) -> BBox | None:
        """The box the region lies in (its bbox, or its polygon's bounds within it); None: no limit."""
        return self._extent

    def allows_zoom(self, zoom: int) -> bool:
        return self.zooms is None or zoom in self.zooms

    def columns(self, zoom: int) -> tuple[int, int] | None:  # replaced by a cached version in __init__
        return self._columns(zoom)

    def _columns(self, zoom: int) -> tuple[int, int] | None:
        """The inclusive x range at ``zoom``, or None when every column is in."""
        if self._extent is None:
            return None
        tiles = self._extent.tiles(zoom)
        return tiles.min_x, tiles.max_x

    def row_span(self, zoom: int) -> tuple[int, int] | None:
        """The inclusive y range of every column at ``zoom`` together, or None when every row is in."""
        if self._extent is None:
            return None
        tiles = self._extent.tiles(zoom)
        return tiles.min_y, tiles.max_y

    def rows(self, zoom: int, x: int) -> Rows | None:  # replaced by a cached version in __init__
        return self._rows(zoom, x)

    def _rows(self, zoom: int, x: int) -> Rows | None:
        """The inclusive y ranges of column ``x`` at ``zoom`` (empty: none; None: every row)."""
        if self._extent is None:
            return None
        tiles = self._extent.tiles(zoom)
        if not tiles.min_x <= x <= tiles.max_x:
            return ()
        if self._shape is None:
            return ((tiles.min_y, tiles.max_y),)
        return _polygon_rows(self._shape, zoom, x)

    def contains(self, zoom: int, x: int, y: int) -> bool:
        if not self.allows_zoom(zoom):
            return False
        ranges = self.rows(zoom, x)
        return ranges is None or any(lo <= y <= hi for lo, hi in ranges)

    def describe(self) -> dict[str, Any]:
        """What the user asked for, as a job records it; with a polygon, also its ``extent`` (``outline``)."""
        record = {
            "zooms": sorted(self.zooms) if self.zooms is not None else None,
            "bbox": self.bbox.as_list() if self.bbox is not None else None,
            "geojson": {"path": self.area.path, "sha256": self.area.sha256} if self.area is not None else None,
        }
        if self.area is not None and self._extent is not None:
            record["extent"] = self._extent.as_list()
        return record


def _polygon_rows(shape: Any, zoom: int, x: int) -> Rows:
    from shapely.geometry import box

    west, _, east, _ = mercantile.bounds(x, 0, zoom)
    piece = shape.intersection(box(west, -90.0, east, 90.0))
    ranges: list[tuple[int, int]] = []
    for part in getattr(piece, "geoms", [piece]):
        if part.is_empty or part.area == 0:  # touching the strip's edge only: no tile interior meets it
            continue
        _, south, _, north = part.bounds
        middle = (west + east) / 2
        top = mercantile.tile(middle, min(north, MAX_LAT) - _EDGE, zoom).y
        bottom = mercantile.tile(middle, max(south, -MAX_LAT) + _EDGE, zoom).y
        ranges.append((top, max(top, bottom)))
    return _merged(ranges)


def _merged(ranges: list[tuple[int, int]]) -> Rows:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return tuple(merged)
