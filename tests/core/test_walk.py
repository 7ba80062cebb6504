"""The walker: streams chunks, opens only the directories a region needs, and skips what cannot be a tile."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pytest

from core.bbox import BBox
from core.region import Region
from core.sources import walk as walk_module
from core.sources.base import SourceError
from core.sources.layouts import Layout
from core.sources.walk import (
    BROKEN_LINK,
    DIR_LIKE_TILE,
    DIR_LINK,
    ESCAPING_LINK,
    NOT_REGULAR,
    OUT_OF_RANGE,
    WalkReport,
    walk,
)

XYZ = Layout.parse()


def touch(root: Path, relpaths: Iterable[str]) -> None:
    for rel in relpaths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def rows(root: Path, layout: Layout = XYZ, region: Region | None = None, **kwargs) -> list[tuple]:
    return sorted(row for chunk in walk(root, layout, region, **kwargs) for row in chunk.tiles)


def test_xyz_tree_yields_relative_paths_and_coordinates(tmp_path: Path) -> None:
    touch(tmp_path, ["3/1/2.png", "3/1/3.jpg", "4/15/0.webp", "3/README.txt", "tilemapresource.xml"])
    assert rows(tmp_path) == [(3, 1, 2, "3/1/2.png"), (3, 1, 3, "3/1/3.jpg"), (4, 15, 0, "4/15/0.webp")]


def test_tms_rows_are_converted_to_xyz(tmp_path: Path) -> None:
    touch(tmp_path, ["3/1/0.png", "3/1/7.png", "2/0/1.png"])
    assert rows(tmp_path, Layout.parse(None, "tms")) == [
        (2, 0, 2, "2/0/1.png"), (3, 1, 0, "3/1/7.png"), (3, 1, 7, "3/1/0.png")
    ]


def test_flat_template_folder(tmp_path: Path) -> None:
    touch(tmp_path, ["3-1-2.jpg", "17-70420-42997.jpg", "3-1-2.png", "notes.jpg"])
    assert rows(tmp_path, Layout.parse("{z}-{x}-{y}.jpg")) == [
        (3, 1, 2, "3-1-2.jpg"), (17, 70420, 42997, "17-70420-42997.jpg")
    ]


def test_out_of_range_coordinates_are_reported_not_yielded(tmp_path: Path) -> None:
    touch(tmp_path, ["3/8/0.png", "3/1/9.png", "25/0/0.png", "3/1/1.png", "flat/3-1-8.jpg"])
    report = WalkReport()
    assert rows(tmp_path, report=report) == [(3, 1, 1, "3/1/1.png")]
    assert report.skipped[OUT_OF_RANGE] == 3
    assert sorted(report.examples[OUT_OF_RANGE]) == ["25", "3/1/9.png", "3/8"]
    flat = WalkReport()
    assert rows(tmp_path / "flat", Layout.parse("{z}-{x}-{y}.jpg"), report=flat) == []
    assert flat.skipped[OUT_OF_RANGE] == 1


def test_irregular_entries_are_skipped_with_their_reason(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    touch(root, ["5/1/1.png", "5/1/9.png"])
    touch(outside, ["secret.png", "zoom/1/1.png"])
    column = root / "5" / "1"
    os.mkfifo(column / "2.png")
    (column / "3.png").mkdir()
    (column / "4.png").symlink_to(column / "missing.png")  # broken
    (column / "5.png").symlink_to(outside / "secret.png")  # leaves the root
    (column / "6.png").symlink_to(column / "1.png")  # a good link inside the root
    (column / "7.png").symlink_to(column / "8.png")  # a loop of links
    (column / "8.png").symlink_to(column / "7.png")
    (column / "10.png").symlink_to(column / "2.png")  # a link to the FIFO
    (root / "6").symlink_to(outside / "zoom")  # a directory link: never followed
    report = WalkReport()
    assert rows(root, report=report) == [(5, 1, 1, "5/1/1.png"), (5, 1, 6, "5/1/6.png"), (5, 1, 9, "5/1/9.png")]
    assert dict(report.skipped) == {NOT_REGULAR: 2, DIR_LIKE_TILE: 1, BROKEN_LINK: 3, ESCAPING_LINK: 1, DIR_LINK: 1}


def test_a_directory_symlink_loop_cannot_hang_the_walk(tmp_path: Path) -> None:
    touch(tmp_path, ["plain/a/1.png"])
    (tmp_path / "plain" / "a" / "loop").symlink_to(tmp_path / "plain")
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "1").symlink_to(tmp_path / "3")
    assert rows(tmp_path / "plain", Layout.parse("plain")) == [(None, None, None, "a/1.png")]
    assert rows(tmp_path) == []


def test_plain_layout_walks_every_image_in_sorted_folders(tmp_path: Path) -> None:
    touch(tmp_path, ["b/2.jpg", "a.png", "b/c/3.webp", "b/notes.txt", ".cache/x.png", "z/.hidden.png"])
    chunks = list(walk(tmp_path, Layout.parse("plain")))
    assert [row[3] for chunk in chunks for row in chunk.tiles] == ["a.png", "b/2.jpg", "b/c/3.webp"]
    assert [chunk.key for chunk in chunks] == [(), ("b",), ("b", "c"), ("z",)]


def test_region_opens_only_the_columns_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path, [f"12/{x}/{y}.png" for x in range(2000, 2100) for y in (1000, 1001, 1500)])
    touch(tmp_path, ["11/1000/500.png", "13/4000/2000.png"])
    opened: list[str] = []

    def counting_scandir(path: str) -> os.ScandirIterator:  # type: ignore[type-arg]
        opened.append(os.path.relpath(path, tmp_path))
        return os.scandir(path)

    monkeypatch.setattr(walk_module, "_scandir", counting_scandir)
    import mercantile

    west, _, _, north = mercantile.bounds(2050, 1000, 12)
    _, south, east, _ = mercantile.bounds(2052, 1001, 12)
    region = Region(zooms=[12], bbox=BBox(west + 1e-6, south + 1e-6, east - 1e-6, north - 1e-6))
    found = rows(tmp_path, region=region)
    assert [(z, x, y) for z, x, y, _ in found] == [(12, x, y) for x in (2050, 2051, 2052) for y in (1000, 1001)]
    assert sorted(opened) == [".", "12", "12/2050", "12/2051", "12/2052"]


def test_chunks_are_bounded_and_mark_the_end_of_each_directory(tmp_path: Path) -> None:
    touch(tmp_path, [f"10/{x}/{y}.png" for x in (5, 6) for y in range(25)])
    chunks = list(walk(tmp_path, XYZ, chunk_size=10))
    assert [len(c.tiles) for c in chunks] == [10, 10, 5, 10, 10, 5]
    assert [c.last for c in chunks] == [False, False, True] * 2
    assert {c.column for c in chunks} == {(10, 5), (10, 6)}
    assert [c.key for c in chunks if c.last] == [(10, 5), (10, 6)]


def test_walk_resumes_after_a_directory(tmp_path: Path) -> None:
    touch(tmp_path, [f"{z}/{x}/0.png" for z in (9, 10) for x in (3, 20, 100)])
    after = rows(tmp_path, after=(9, 20))
    assert [(z, x) for z, x, _, _ in after] == [(9, 100), (10, 3), (10, 20), (10, 100)]
    assert rows(tmp_path, after=(10, 100)) == []


def test_missing_or_file_root_is_an_error(tmp_path: Path) -> None:
    touch(tmp_path, ["file.png"])
    for bad in (tmp_path / "missing", tmp_path / "file.png"):
        with pytest.raises(SourceError, match="not a directory"):
            list(walk(bad, XYZ))
