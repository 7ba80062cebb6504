"""Layouts: templates parse into per-directory patterns, and label-maker's tiles are read by their names."""

from __future__ import annotations

from pathlib import Path

import mercantile
import pytest

from core.bbox import BBox
from core.errors import TileError
from core.region import Region
from core.sources.layouts import Layout
from core.sources.walk import walk
from tests.labelmaker import CONFIG_BBOX, labelmaker_tiles


def tiles_of(root: Path, layout: Layout, region: Region | None = None) -> list[tuple]:
    return sorted(row for chunk in walk(root, layout, region) for row in chunk.tiles)


def test_default_is_the_xyz_tree_with_any_image_extension() -> None:
    layout = Layout.parse()
    assert layout.name == "xyz:{z}/{x}/{y}.{ext}"
    z, x, y = layout.levels
    assert (z.match("17"), x.match("70420"), y.match("42997.png")) == ((17,), (70420,), (42997,))
    assert [y.match(name) for name in ("1.JPG", "1.jpeg", "1.webp", "1.tif", "1.png.bak", "a.png")] == [
        (1,), (1,), (1,), None, None, None
    ]


def test_template_levels_capture_coordinates_in_their_order() -> None:
    layout = Layout.parse("tiles/{z}/{x}-{y}.jpg", "tms")
    assert layout.name == "tms:tiles/{z}/{x}-{y}.jpg"
    literal, zoom, leaf = layout.levels
    assert literal.match("tiles") == () and literal.match("other") is None
    assert zoom.fields == ("z",) and leaf.fields == ("x", "y")
    assert leaf.match("12-34.jpg") == (12, 34) and leaf.match("12-34.png") is None


def test_plain_layout_has_no_levels() -> None:
    assert Layout.parse("plain").is_plain and Layout.parse("plain").name == "plain"


@pytest.mark.parametrize(("template", "scheme", "problem"), [
    ("{z}/{x}.png", "xyz", "exactly once"),
    ("{z}/{x}/{y}/{y}.png", "xyz", "exactly once"),
    ("{z}/{x}/{y}", "xyz", "must end in"),
    ("{z}/{x}/{y}.tif", "xyz", "must end in"),
    ("{z}{x}/{y}.png", "xyz", "side by side"),
    ("{z}/{q}/{x}/{y}.png", "xyz", "unknown placeholder"),
    ("{z}//{x}/{y}.png", "xyz", "empty"),
    ("../{z}/{x}/{y}.png", "xyz", "'..'"),
    ("{ext}/{z}/{x}/{y}.png", "xyz", "only appear in the file name"),
    ("plain", "tms", "needs a layout with coordinates"),
    (None, "google", "choose one of xyz, tms"),
])
def test_bad_layouts_say_what_is_wrong(template: str | None, scheme: str, problem: str) -> None:
    with pytest.raises(TileError, match=problem):
        Layout.parse(template, scheme)


def test_every_labelmaker_tile_is_found_with_its_coordinates(tmp_path: Path) -> None:
    root = labelmaker_tiles(tmp_path / "z17-jpg")
    names = sorted(p.name for p in root.iterdir())
    assert len(names) == 8
    expected = sorted((17, int(x), int(y), f"{x}-{y}-17.jpg") for x, y, _ in (n[:-4].split("-") for n in names))
    assert tiles_of(root, Layout.parse("{x}-{y}-{z}.jpg")) == expected
    assert len(tiles_of(labelmaker_tiles(tmp_path / "z12-png", zoom=12), Layout.parse("{x}-{y}-{z}.png"))) == 12


def test_labelmaker_tiles_inside_a_bbox_only(tmp_path: Path) -> None:
    root, layout = labelmaker_tiles(tmp_path / "z17-jpg"), Layout.parse("{x}-{y}-{z}.jpg")
    everything = {row[:3] for row in tiles_of(root, layout)}
    config_bbox = Region(bbox=BBox.of(CONFIG_BBOX))
    assert {row[:3] for row in tiles_of(root, layout, config_bbox)} == everything
    west = mercantile.bounds(62093, 0, 17).west + 1e-6  # cut off column 62092 and the southern row
    south = mercantile.bounds(0, 50163, 17).south + 1e-6
    smaller = (west, south, CONFIG_BBOX[2], CONFIG_BBOX[3])
    inside = {(t.z, t.x, t.y) for t in mercantile.tiles(*smaller, zooms=[17])}
    found = {row[:3] for row in tiles_of(root, layout, Region(bbox=BBox.of(smaller)))}
    assert found == everything & inside
    assert 0 < len(found) < len(everything)
    assert tiles_of(root, layout, Region(zooms=[16])) == []


@pytest.mark.parametrize(("template", "folder", "expected"), [
    (None, "/data/tiles/16", ("/data/tiles", {"z": 16})),
    (None, "/data/tiles/16/34000", ("/data/tiles", {"z": 16, "x": 34000})),
    ("z{z}/{x}/{y}.png", "/data/z5", ("/data", {"z": 5})),
    (None, "/data/tiles", None),  # not numbers: a root
    (None, "/data/tiles/25", None),  # no zoom 25
    (None, "/data/16/99999", None),  # zoom 16 has no column 99999, and zoom 99999 does not exist
    ("{z}-{x}-{y}.jpg", "/data/16", None),  # one folder: nothing above it
    ("plain", "/data/16", None),
])
def test_a_folder_inside_a_tree_names_the_tree_root(template: str | None, folder: str,
                                                    expected: tuple[str, dict[str, int]] | None) -> None:
    found = Layout.parse(template).tree_root_above(Path(folder))
    assert found == (None if expected is None else (Path(expected[0]), expected[1]))
