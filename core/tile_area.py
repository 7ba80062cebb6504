"""The true area of a tile on the WGS84 ellipsoid, in closed form.

A Web Mercator tile is a box bounded by two meridians and two parallels, so its area needs no polygon algorithm.
On an ellipsoid of revolution (semi-major axis ``a``, eccentricity ``e``, semi-minor axis ``b = a sqrt(1 - e²)``) the
area between the equator and latitude ``φ`` over ``Δλ`` radians of longitude is ``Δλ b² q(φ) / 2`` with the authalic
latitude's function (Snyder 1987, "Map Projections: A Working Manual", eq. 3-12)::

    q(φ) = sin φ / (1 - e² sin² φ) + ln((1 + e sin φ) / (1 - e sin φ)) / (2e)

so a box's area is ``Δλ b² (q(north) - q(south)) / 2`` (the difference taken without cancellation, see
``_q_difference``). Over the whole ellipsoid (Δλ = 2π, ±90°) this is the ellipsoid's surface area, 510,065,621.7 km²
for WGS84. A z16 tile is about 4x larger on the ground at the equator than at 60° N. Area depends only on a tile's
zoom and row, hence the cache.
"""

from __future__ import annotations

import math
from functools import lru_cache

WGS84_A = 6_378_137.0  # semi-major axis, metres
WGS84_F = 1 / 298.257223563  # flattening
_E2 = WGS84_F * (2 - WGS84_F)
_E = math.sqrt(_E2)
_B2 = WGS84_A * WGS84_A * (1 - _E2)


def _q_difference(north: float, south: float, difference: float) -> float:
    """``q(φn) - q(φs)`` from the sines of the two latitudes and their difference.

    Subtracting two values of ``q`` loses the digits that small tiles need (a z24 tile near the pole keeps about 7
    significant digits that way), so the difference is taken inside each term: ``atanh u - atanh v = atanh((u - v) /
    (1 - uv))``, and the first term's difference has ``sin φn - sin φs`` as a factor.
    """
    product = _E2 * north * south
    rational = difference * (1 + product) / ((1 - _E2 * north * north) * (1 - _E2 * south * south))
    return rational + math.atanh(_E * difference / (1 - product)) / _E


def box_area_m2(west: float, south: float, east: float, north: float) -> float:
    """Area in m² of the box between two meridians and two parallels (degrees) on the WGS84 ellipsoid."""
    if not (-90 <= south <= north <= 90) or east < west:
        raise ValueError(f"not a box: west {west}, south {south}, east {east}, north {north}")
    north_rad, south_rad = math.radians(north), math.radians(south)
    # sin φn - sin φs as a product, exact to the last digits however close the parallels are
    difference = 2 * math.cos((north_rad + south_rad) / 2) * math.sin((north_rad - south_rad) / 2)
    return math.radians(east - west) * _B2 * _q_difference(math.sin(north_rad), math.sin(south_rad), difference) / 2


@lru_cache(maxsize=65_536)
def row_area_km2(z: int, y: int) -> float:
    """Area in km² of any XYZ tile in row ``y`` of zoom ``z`` (a tile's area depends only on its row)."""
    if not 0 <= y < 2**z:
        raise ValueError(f"row {y} is outside zoom {z}'s grid")
    # Web Mercator's row edges, straight from y: sin φ = tanh(t) with t = π(1 - 2y / 2^z), so the sines and their
    # difference, sinh(tn - ts) / (cosh tn cosh ts), need no latitude in degrees in between.
    step = 2 * math.pi / 2**z
    top = math.pi - y * step
    bottom = top - step
    difference = math.sinh(step) / (math.cosh(top) * math.cosh(bottom))
    width = 2 * math.pi / 2**z  # a tile's Δλ in radians
    return width * _B2 * _q_difference(math.tanh(top), math.tanh(bottom), difference) / 2 / 1e6


def tile_area_km2(z: int, x: int, y: int) -> float:
    """Area in km² of XYZ tile ``z/x/y`` on the WGS84 ellipsoid (every tile of one row has the same)."""
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise ValueError(f"tile {z}/{x}/{y} is outside zoom {z}'s grid")
    return row_area_km2(z, y)
