"""core.tile_area against an independent computation: pyproj's Geod (Karney's geodesic polygon area on WGS84) over
the same box with densified edges. A box's north and south edges are parallels, not geodesics, so each edge is cut
into many short geodesics; the closed form must agree with that to well under 1e-6 of the area."""

from __future__ import annotations

import math

import mercantile
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyproj import Geod

from core.tile_area import box_area_m2, tile_area_km2

WGS84 = Geod(ellps="WGS84")
STEPS = 1000  # points per edge: the parallels' departure from geodesics between points is far below the tolerance


def geod_area_m2(west: float, south: float, east: float, north: float) -> float:
    lons = [west + (east - west) * i / STEPS for i in range(STEPS + 1)]
    lats = [south + (north - south) * i / STEPS for i in range(STEPS + 1)]
    ring_lons = lons + [east] * STEPS + lons[::-1][1:] + [west] * STEPS
    ring_lats = [south] * (STEPS + 1) + lats[1:] + [north] * STEPS + lats[::-1][1:]
    area, _ = WGS84.polygon_area_perimeter(ring_lons, ring_lats)
    return abs(area)


@pytest.mark.parametrize("latitude", [0.0, 1.0, 30.0, 45.0, 60.0, 70.0, 80.0, -33.9, -60.0, -84.0])
@pytest.mark.parametrize("zoom", [1, 2, 4, 10, 16, 20])
def test_a_tile_has_the_geodesic_area_of_its_box(latitude: float, zoom: int) -> None:
    tile = mercantile.tile(12.5, latitude, zoom)
    bounds = mercantile.bounds(tile)
    expected = geod_area_m2(*bounds)
    assert tile_area_km2(tile.z, tile.x, tile.y) * 1e6 == pytest.approx(expected, rel=1e-6)


def test_large_boxes_agree_and_the_whole_ellipsoid_is_its_surface() -> None:
    for box in [(-10.0, -5.0, 10.0, 5.0), (0.0, 40.0, 30.0, 70.0), (100.0, -80.0, 140.0, -50.0)]:
        assert box_area_m2(*box) == pytest.approx(geod_area_m2(*box), rel=1e-6)
    # WGS84's surface area, 510,065,621.7 km² (e.g. NIMA TR8350.2, table 3.5: 5.10065622e14 m²)
    assert box_area_m2(-180, -90, 180, 90) / 1e6 == pytest.approx(510_065_621.7, rel=1e-9)


def test_tiles_shrink_with_latitude_and_a_zoom_splits_a_tile_into_four_of_the_same_area() -> None:
    equator, sixty = mercantile.tile(0.1, 0.1, 16), mercantile.tile(0.1, 60.0, 16)
    at_equator = tile_area_km2(16, equator.x, equator.y)
    at_sixty = tile_area_km2(16, sixty.x, sixty.y)
    assert at_equator / at_sixty == pytest.approx(1 / math.cos(math.radians(60)) ** 2, rel=0.01)  # ~4x
    children = mercantile.children(sixty)
    # zoom 0's one tile goes round the globe (no polygon for Geod): it is the sum of its four children
    assert tile_area_km2(0, 0, 0) == pytest.approx(sum(tile_area_km2(1, x, y) for x in (0, 1) for y in (0, 1)))
    assert sum(tile_area_km2(c.z, c.x, c.y) for c in children) == pytest.approx(at_sixty, rel=1e-12)
    side = 2 * math.pi * 6_378_137.0 / 2**16  # at the equator a tile is about a square of 1/65536 of the equator
    assert at_equator * 1e6 == pytest.approx(side * side, rel=0.01)


def test_a_tile_outside_its_grid_is_refused() -> None:
    with pytest.raises(ValueError, match="outside zoom 2"):
        tile_area_km2(2, 4, 0)


@given(st.integers(min_value=0, max_value=24).flatmap(
    lambda z: st.tuples(st.just(z), st.integers(0, 2**z - 1), st.integers(0, 2**z - 1))))
def test_a_tile_is_its_children_and_its_mirror_across_the_equator(tile: tuple[int, int, int]) -> None:
    z, x, y = tile
    area = tile_area_km2(z, x, y)
    assert area > 0
    # to the last digits even for z24 near the poles, where a plain q(north) - q(south) keeps only about 7
    assert tile_area_km2(z, 2**z - 1 - x, 2**z - 1 - y) == pytest.approx(area, rel=1e-12)  # the ellipsoid's symmetry
    if z < 24:
        children = mercantile.children(mercantile.Tile(x, y, z))
        assert sum(tile_area_km2(c.z, c.x, c.y) for c in children) == pytest.approx(area, rel=1e-12)
    # the same box through its bounds in degrees (box_area_m2), which loses a few digits in the round trip
    assert box_area_m2(*mercantile.bounds(x, y, z)) / 1e6 == pytest.approx(area, rel=1e-7)
