"""Tile coordinates.

A map tile is addressed the slippy-map (XYZ) way: zoom ``z`` in 0..24, column ``x`` and row ``y`` in
``0 .. 2**z - 1``, with ``y = 0`` at the north edge (Web Mercator, EPSG:3857). TMS trees (gdal2tiles) count
rows from the south; ``Tile.from_tms`` converts them on the way in so that everything stored is XYZ.

Tile math (bounds, tiles under a point or bbox) comes from mercantile rather than being written again.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import mercantile

from core.errors import TileError

MAX_ZOOM = 24
_TILE_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*/\s*(\d+)\s*$")


class Tile(NamedTuple):
    """An XYZ tile; immutable and hashable. Build it with ``Tile.checked`` to validate the range."""

    z: int
    x: int
    y: int

    @classmethod
    def checked(cls, z: int, x: int, y: int) -> Tile:
        """A tile whose coordinates are in range for its zoom, else ``TileError`` naming the valid range."""
        if not 0 <= z <= MAX_ZOOM:
            raise TileError(f"zoom {z} is out of range: zoom must be 0..{MAX_ZOOM}")
        limit = 2**z - 1
        if not (0 <= x <= limit and 0 <= y <= limit):
            raise TileError(f"tile {z}/{x}/{y} is out of range: x and y must be 0..{limit} at zoom {z}")
        return cls(z, x, y)

    @classmethod
    def parse(cls, spec: str) -> Tile:
        """Parse ``"Z/X/Y"``."""
        match = _TILE_SPEC.match(spec)
        if not match:
            raise TileError(f"invalid tile {spec!r}: expected Z/X/Y, for example 17/70420/42997")
        z, x, y = (int(part) for part in match.groups())
        return cls.checked(z, x, y)

    @classmethod
    def from_tms(cls, z: int, x: int, y_tms: int) -> Tile:
        """Convert a TMS row (counted from the south) to XYZ."""
        return cls.checked(z, x, (2**z - 1) - y_tms)

    @classmethod
    def at_point(cls, lon: float, lat: float, zoom: int) -> Tile:
        """The tile under a WGS84 point."""
        check_zoom(zoom)
        if not (-180.0 <= lon <= 180.0 and -85.0511 <= lat <= 85.0511):
            raise TileError(f"point ({lon}, {lat}) is outside lon -180..180, lat -85.0511..85.0511")
        found = mercantile.tile(lon, lat, zoom)
        return cls(found.z, found.x, found.y)

    def bounds(self) -> mercantile.LngLatBbox:
        """The tile's WGS84 bounds (west, south, east, north)."""
        return mercantile.bounds(self.x, self.y, self.z)

    def __str__(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"


def check_zoom(zoom: int) -> int:
    if not 0 <= zoom <= MAX_ZOOM:
        raise TileError(f"zoom {zoom} is out of range: zoom must be 0..{MAX_ZOOM}")
    return zoom
