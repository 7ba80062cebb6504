"""WGS84 bounding boxes and the rectangle of tiles a box covers at one zoom.

A bbox follows mercantile's convention (``mercantile.tiles``): a tile is in when it overlaps the box, and an edge
that lies exactly on a tile boundary does not pull in the next tile. Boxes do not cross the antimeridian.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mercantile

from core.errors import TileError
from core.tiles import MAX_LAT, check_zoom

_EDGE = 1e-11  # mercantile.tiles' LL_EPSILON: an edge on a tile boundary stays out of the next tile
_LAT_LIMIT = 85.0511287798066  # Web Mercator's exact edge, so that a box of tile bounds is a box too
EXAMPLE = "-9.47,38.82,-9.43,38.86"


@dataclass(frozen=True, slots=True)
class TileRange:
    """The tiles ``min_x..max_x`` by ``min_y..max_y`` (inclusive) of one zoom."""

    zoom: int
    min_x: int
    max_x: int
    min_y: int
    max_y: int

    @property
    def width(self) -> int:
        return self.max_x - self.min_x + 1

    @property
    def height(self) -> int:
        return self.max_y - self.min_y + 1

    @property
    def count(self) -> int:
        return self.width * self.height

    @classmethod
    def whole(cls, zoom: int) -> TileRange:
        """Every tile of ``zoom``."""
        last = 2 ** check_zoom(zoom) - 1
        return cls(zoom, 0, last, 0, last)

    def holds(self, x: int, y: int) -> bool:
        """Whether the tile at column ``x``, row ``y`` of this zoom is in the range."""
        return self.min_x <= x <= self.max_x and self.min_y <= y <= self.max_y

    def bounds(self) -> BBox:
        """The WGS84 box that the range's tiles cover."""
        west, _, _, north = mercantile.bounds(self.min_x, self.min_y, self.zoom)
        _, south, east, _ = mercantile.bounds(self.max_x, self.max_y, self.zoom)
        return BBox.of([west, south, east, north])

    def __str__(self) -> str:
        return f"zoom {self.zoom}, x {self.min_x}..{self.max_x}, y {self.min_y}..{self.max_y}"


@dataclass(frozen=True, slots=True)
class BBox:
    """A WGS84 bounding box (degrees), checked on creation: west < east, south < north, inside ±180 / ±85.0511."""

    west: float
    south: float
    east: float
    north: float

    def __post_init__(self) -> None:
        corners = [self.west, self.south, self.east, self.north]
        if not all(-180.0 <= lon <= 180.0 for lon in (self.west, self.east)) or not all(
            -_LAT_LIMIT <= lat <= _LAT_LIMIT for lat in (self.south, self.north)
        ):
            raise TileError(f"bbox {corners} is outside lon -180..180, lat -{MAX_LAT}..{MAX_LAT}")
        if not self.west < self.east:
            raise TileError(f"bbox {corners} is empty or inverted: west ({self.west}) must be less than east "
                            f"({self.east})")
        if not self.south < self.north:
            raise TileError(f"bbox {corners} is empty or inverted: south ({self.south}) must be less than north "
                            f"({self.north})")

    @classmethod
    def parse(cls, text: str) -> BBox:
        """Parse ``"W,S,E,N"`` in degrees."""
        try:
            west, south, east, north = (float(part.strip()) for part in text.split(","))
        except ValueError:
            raise TileError(f"invalid bbox {text!r}: expected W,S,E,N in degrees, e.g. {EXAMPLE}") from None
        return cls(west, south, east, north)

    @classmethod
    def of(cls, corners: Sequence[float]) -> BBox:
        """A bbox from ``[west, south, east, north]`` (as a job records it, or shapely's ``bounds``)."""
        west, south, east, north = (float(v) for v in corners)
        return cls(west, south, east, north)

    def as_list(self) -> list[float]:
        return [self.west, self.south, self.east, self.north]

    def intersection(self, other: BBox) -> BBox | None:
        """The box both boxes cover, or None when they do not overlap."""
        west, south = max(self.west, other.west), max(self.south, other.south)
        east, north = min(self.east, other.east), min(self.north, other.north)
        return BBox(west, south, east, north) if west < east and south < north else None

    def tiles(self, zoom: int) -> TileRange:
        """The tiles of ``zoom`` that the box overlaps, as ``mercantile.tiles`` lists them, without listing them."""
        check_zoom(zoom)
        upper_left = mercantile.tile(self.west, self.north, zoom)
        lower_right = mercantile.tile(self.east - _EDGE, self.south + _EDGE, zoom)
        # At the map's edges (lon 180, lat ±85.0511) mercantile can step one tile outside; keep to the grid.
        last = 2**zoom - 1
        x0, x1 = (min(max(v, 0), last) for v in (upper_left.x, max(upper_left.x, lower_right.x)))
        y0, y1 = (min(max(v, 0), last) for v in (upper_left.y, max(upper_left.y, lower_right.y)))
        return TileRange(zoom, x0, x1, y0, y1)

    def __str__(self) -> str:
        return ",".join(f"{v:g}" for v in self.as_list())
