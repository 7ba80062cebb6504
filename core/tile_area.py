"""The true area of a tile on the WGS84 ellipsoid, in closed form.

A Web Mercator tile is a box bounded by two meridians and two parallels, so its area needs no polygon algorithm.
On an ellipsoid of revolution (semi-major axis ``a``, eccentricity ``e``, semi-minor axis ``b = a sqrt(1 - e²)``) the
area between the equator and latitude ``φ`` over ``Δλ`` radians of longitude is ``Δλ b² q(φ) / 2`` with the authalic
latitude's function (Snyder 1987, "Map Projections: A Working Manual", eq. 3-12)::

    q(φ) = sin φ / (1 - e² sin² φ) + ln((1 + e sin φ) / (1 - e sin φ)) / (2e)

so a box's area is ``Δλ b² (q(north) - q(south)) / 2``. Over the whole ellipsoid (Δλ = 2π, ±90°) this is the
ellipsoid's surface area, 510,065,621.7 km² for WGS84. A z16 tile is about 4x larger on the ground at the equator
than at 60° N. Area depends only on a tile's zoom and row, hence the cache.
"""

from __future__ import annotations

import math
from functools import lru_cache

import mercantile

WGS84_A = 6_378_137.0  # semi-major axis, metres
WGS84_F = 1 / 298.257223563  # flattening
_E2 = WGS84_F * (2 - WGS84_F)
_E = math.sqrt(_E2)
_B2 = WGS84_A * WGS84_A * (1 - _E2)


def _q(latitude: float) -> float:
    sin = math.sin(math.radians(latitude))
    return sin / (1 - _E2 * sin * sin) + math.log((1 + _E * sin) / (1 - _E * sin)) / (2 * _E)


def box_area_m2(west: float, south: float, east: float, north: float) -> float:
    """Area in m² of the box between two meridians and two parallels (degrees) on the WGS84 ellipsoid."""
    if not (-90 <= south <= north <= 90) or east < west:
        raise ValueError(f"not a box: west {west}, south {south}, east {east}, north {north}")
    return math.radians(east - west) * _B2 * (_q(north) - _q(south)) / 2


@lru_cache(maxsize=65_536)
def row_area_km2(z: int, y: int) -> float:
    """Area in km² of any XYZ tile in row ``y`` of zoom ``z`` (a tile's area depends only on its row)."""
    if not 0 <= y < 2**z:
        raise ValueError(f"row {y} is outside zoom {z}'s grid")
    west, south, east, north = mercantile.bounds(0, y, z)
    return box_area_m2(west, south, east, north) / 1e6


def tile_area_km2(z: int, x: int, y: int) -> float:
    """Area in km² of XYZ tile ``z/x/y`` on the WGS84 ellipsoid (every tile of one row has the same)."""
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise ValueError(f"tile {z}/{x}/{y} is outside zoom {z}'s grid")
    return row_area_km2(z, y)
