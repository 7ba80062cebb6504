"""Regions: bbox ranges agree with mercantile, polygons give exact per-column rows, bad input is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import mercantile
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, box

from core.bbox import BBox
from core.errors import TileError
from core.region import GeoJsonArea, Region, load_geojson


def region_tiles(region: Region, zoom: int) -> set[tuple[int, int]]:
    columns = region.columns(zoom)
    assert columns is not None
    return {(x, y) for x in range(columns[0], columns[1] + 1) for lo, hi in region.rows(zoom, x) or ()
            for y in range(lo, hi + 1)}


def test_parse_bbox_accepts_negative_degrees() -> None:
    assert BBox.parse("-9.47, 38.82,-9.43,38.86") == BBox(-9.47, 38.82, -9.43, 38.86)


@pytest.mark.parametrize(("text", "problem"), [
    ("1,2,3", "expected W,S,E,N"),
    ("a,b,c,d", "expected W,S,E,N"),
    ("10,0,5,1", "west .* must be less than east"),
    ("0,1,1,1", "south .* must be less than north"),
    ("-181,0,0,1", "outside lon -180..180"),
    ("0,0,1,86", "lat -85.0511..85.0511"),
])
def test_bad_bbox_is_a_clear_error(text: str, problem: str) -> None:
    with pytest.raises(TileError, match=problem):
        BBox.parse(text)


bboxes = st.tuples(st.floats(-180, 179.9), st.floats(-85.05, 85.0), st.floats(0.0001, 40), st.floats(0.0001, 40))


@settings(max_examples=200, deadline=None)
@given(bboxes, st.integers(0, 9))
def test_bbox_ranges_match_mercantile_tiles(corner: tuple[float, float, float, float], zoom: int) -> None:
    west, south, width, height = corner
    bbox = BBox(west, south, min(west + width, 180.0), min(south + height, 85.0511))
    assume(bbox.tiles(zoom).count <= 20_000)
    expected = {(t.x, t.y) for t in mercantile.tiles(*bbox.as_list(), zooms=[zoom])}
    assert region_tiles(Region(bbox=bbox), zoom) == expected


def area(geometry: Polygon) -> GeoJsonArea:
    return GeoJsonArea("inline", "0", geometry)


triangles = st.lists(st.tuples(st.floats(-20, 20), st.floats(-20, 20)), min_size=3, max_size=3)


@settings(max_examples=60, deadline=None)
@given(triangles, st.integers(2, 6))
def test_polygon_rows_are_exactly_the_tiles_whose_interior_meets_it(points: list, zoom: int) -> None:
    shape = Polygon(points)
    assume(shape.is_valid and shape.area > 1.0)
    region = Region(area=area(shape))
    brute = set()
    for tile in mercantile.tiles(*shape.bounds, zooms=[zoom]):
        if box(*mercantile.bounds(tile)).intersection(shape).area > 1e-9:
            brute.add((tile.x, tile.y))
    got = region_tiles(region, zoom)
    assert brute <= got  # no tile the polygon covers is ever missed
    for x, y in got - brute:  # extra tiles only where the polygon barely touches (float tolerance)
        assert box(*mercantile.bounds(x, y, zoom)).distance(shape) < 1e-6


def test_u_shaped_polygon_gives_two_row_ranges_in_one_column() -> None:
    u_shape = Polygon([(0, 0), (30, 0), (30, 60), (20, 60), (20, 10), (10, 10), (10, 60), (0, 60)])
    region = Region(area=area(u_shape.difference(box(0, 20, 30, 50)).union(box(0, 50, 30, 60))))
    rows = region.rows(4, mercantile.tile(15, 30, 4).x)
    assert rows is not None and len(rows) == 2
    assert not region.contains(4, mercantile.tile(15, 30, 4).x, mercantile.tile(15, 30, 4).y)


def test_zooms_and_bbox_together() -> None:
    region = Region(zooms=[3, 5], bbox=BBox(0, 0, 10, 10))
    assert region.allows_zoom(5) and not region.allows_zoom(4)
    assert region.describe() == {"zooms": [3, 5], "bbox": [0, 0, 10, 10], "geojson": None}
    everything = Region()
    assert everything.allows_zoom(3) and everything.extent is None and everything.rows(3, 1) is None


def test_geojson_file_feature_collection(tmp_path: Path) -> None:
    document = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [
            [[-9.47, 38.82], [-9.43, 38.82], [-9.43, 38.86], [-9.47, 38.86], [-9.47, 38.82]]]}},
    ]}
    path = tmp_path / "area.geojson"
    path.write_text(json.dumps(document))
    loaded = load_geojson(path)
    assert loaded.geometry.bounds == pytest.approx((-9.47, 38.82, -9.43, 38.86))
    region = Region(area=loaded)
    assert region_tiles(region, 14) == {(t.x, t.y) for t in mercantile.tiles(-9.47, 38.82, -9.43, 38.86, 14)}
    assert region.describe()["geojson"]["path"] == str(path.resolve())


@pytest.mark.parametrize(("content", "problem"), [
    (None, "cannot read GeoJSON"),
    ("{not json", "cannot read GeoJSON"),
    ('{"type": "Point", "coordinates": [0, 0]}', "holds Point: a Polygon or MultiPolygon is needed"),
    ('{"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}', "LineString"),
    ('{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [2, 2], [0, 0]]]}', "empty"),
    ("[1, 2]", "not a GeoJSON object"),
])
def test_bad_geojson_is_a_clear_error(tmp_path: Path, content: str | None, problem: str) -> None:
    path = tmp_path / "area.geojson"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TileError, match=problem):
        load_geojson(path)


def test_polygon_outside_the_bbox_is_an_empty_region() -> None:
    with pytest.raises(TileError, match="region is empty"):
        Region(bbox=BBox(50, 0, 60, 10), area=area(box(0, 0, 10, 10)))


def test_zoom_outside_0_to_24_is_refused() -> None:
    with pytest.raises(TileError, match=r"zoom must be 0\.\.24"):
        Region(zooms=[25])
