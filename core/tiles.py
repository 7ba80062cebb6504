"""The one tile type, from the walk through the messages and the worker to the results and the queries.

A map tile is addressed the slippy-map (XYZ) way: zoom ``z`` in 0..24, column ``x`` and row ``y`` in
``0 .. 2**z - 1``, with ``y = 0`` at the north edge (Web Mercator, EPSG:3857). TMS trees (gdal2tiles) count
rows from the south; the walker converts them on the way in (``flip_row``), so that everything stored is XYZ.

A ``Tile`` carries its coordinates where its source has them and its address inside the source (``path``, for
example ``17/70420/42997.png`` below a folder) where the source needs one to read it. A folder of images without
coordinates gives tiles with a path only; a source that reads by coordinates may give tiles without a path. Within
one model a tile is identified by its coordinates when it has them, else by its path (``identity``).

In a message a tile is the JSON list ``[z, x, y, path]`` (``Tile.from_row`` checks one). Tile math (bounds, the
tile under a point) comes from mercantile rather than being written again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import mercantile

from core.errors import TileError

MAX_ZOOM = 24
MAX_LAT = 85.0511
_TILE_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*/\s*(\d+)\s*$")


def fits(z: int, x: int, y: int) -> bool:
    """Whether ``x`` and ``y`` are tile indexes of zoom ``z`` (the one range rule)."""
    return 0 <= z <= MAX_ZOOM and 0 <= x < 1 << z and 0 <= y < 1 << z


def check_zoom(zoom: int) -> int:
    """``zoom`` when it is 0..24, else ``TileError``."""
    if not 0 <= zoom <= MAX_ZOOM:
        raise TileError(f"zoom {zoom} is out of range: zoom must be 0..{MAX_ZOOM}")
    return zoom


def flip_row(z: int, y: int) -> int:
    """A TMS row (counted from the south) as an XYZ row; the conversion is its own inverse."""
    return (1 << z) - 1 - y


class Tile(NamedTuple):
    """A tile: XYZ coordinates (None where the source has none) and its address in the source (None where the
    source reads by coordinates). Immutable and hashable; build a coordinate tile with ``Tile.checked``."""

    z: int | None
    x: int | None
    y: int | None
    path: str | None = None

    @classmethod
    def checked(cls, z: int, x: int, y: int, path: str | None = None) -> Tile:
        """A tile whose coordinates are in range for its zoom, else ``TileError`` naming the valid range."""
        check_zoom(z)
        if not fits(z, x, y):
            raise TileError(f"tile {z}/{x}/{y} is out of range: x and y must be 0..{(1 << z) - 1} at zoom {z}")
        return cls(z, x, y, path)

    @classmethod
    def parse(cls, spec: str) -> Tile:
        """Parse ``"Z/X/Y"``."""
        match = _TILE_SPEC.match(spec)
        if not match:
            raise TileError(f"invalid tile {spec!r}: expected Z/X/Y, for example 17/70420/42997")
        z, x, y = (int(part) for part in match.groups())
        return cls.checked(z, x, y)

    @classmethod
    def at_point(cls, lon: float, lat: float, zoom: int) -> Tile:
        """The tile under a WGS84 point."""
        check_zoom(zoom)
        if not (-180.0 <= lon <= 180.0 and -MAX_LAT <= lat <= MAX_LAT):
            raise TileError(f"point ({lon}, {lat}) is outside lon -180..180, lat -{MAX_LAT}..{MAX_LAT}")
        found = mercantile.tile(lon, lat, zoom)
        return cls(found.z, found.x, found.y)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Tile:
        """A tile from its message form ``[z, x, y, path]``; ``ValueError`` for anything else."""
        if not isinstance(row, list | tuple) or len(row) != 4:
            raise ValueError(f"malformed tile row {row!r}: expected [z, x, y, path]")
        z, x, y, path = row
        coordinates = (z, x, y)
        if all(v is None for v in coordinates):
            if not isinstance(path, str) or not path:
                raise ValueError(f"malformed tile row {row!r}: a tile without coordinates needs a path")
        elif not all(type(v) is int for v in coordinates) or not fits(z, x, y):
            raise ValueError(f"malformed tile row {row!r}: coordinates must be a tile of zoom 0..{MAX_ZOOM}")
        elif path is not None and not isinstance(path, str):
            raise ValueError(f"malformed tile row {row!r}: path must be a string or null")
        if path is not None and "\0" in path:  # no file name holds one, and PostgreSQL's text refuses it
            raise ValueError(f"malformed tile row {row!r}: a path cannot contain a NUL byte")
        return cls(z, x, y, None if path is None else normal_path(path))

    @property
    def has_coordinates(self) -> bool:
        return self.z is not None

    def identity(self) -> tuple[int, int, int, int, str]:
        """What makes a tile unique within one model's results: its coordinates, else its path (sortable)."""
        if self.z is not None:
            return (0, self.z, self.x or 0, self.y or 0, "")
        return (1, -1, -1, -1, self.path or "")

    def xyz(self) -> tuple[int, int, int]:
        """The coordinates of a tile that has them (``TileError`` for one without)."""
        if self.z is None or self.x is None or self.y is None:
            raise TileError(f"tile {self.path!r} has no coordinates")
        return self.z, self.x, self.y

    def bounds(self) -> mercantile.LngLatBbox:
        """The tile's WGS84 bounds (west, south, east, north)."""
        z, x, y = self.xyz()
        return mercantile.bounds(x, y, z)

    def __str__(self) -> str:
        return f"{self.z}/{self.x}/{self.y}" if self.z is not None else str(self.path)


def parse_zooms(values: Sequence[str]) -> list[int]:
    """Zoom levels from ``--zoom`` values: numbers and ranges such as ``15-17``."""
    zooms: list[int] = []
    for value in values:
        low, _, high = value.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise TileError(f"invalid zoom {value!r}: expected a number 0..24 or a range such as 15-17") from None
        if first > last:
            raise TileError(f"invalid zoom range {value!r}: the first zoom must not exceed the last")
        zooms.extend(check_zoom(z) for z in range(first, last + 1))
    return zooms


def normal_path(path: str) -> str:
    """One spelling per file: ``a//b.png``, ``./a/b.png`` and ``a/b.png/`` are all ``a/b.png``.

    Only empty and ``.`` components are dropped; ``..`` is kept (``core.sources.roots.safe_join`` refuses it) and a
    leading ``/`` too (refused there as absolute), so normalising never turns a path that leaves its root into one
    that does not.
    """
    parts = [part for part in path.split("/") if part not in ("", ".")]
    return ("/" if path.startswith("/") else "") + "/".join(parts)
