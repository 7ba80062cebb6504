"""Hostile MBTiles and PMTiles files, built at test time the way an attacker would lay them out: a bad row or tile fails
alone with its reason, a damaged file is a one-line ``SourceError``, and nothing is inflated or iterated without a
bound (a gzip bomb is refused without being allocated, a run of 2**40 tiles is refused, a long run is cut by
arithmetic)."""

from __future__ import annotations

import gzip
import sqlite3
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pmtiles.tile import (
    Compression,
    Entry,
    deserialize_directory,
    serialize_directory,
    tileid_to_zxy,
    zxy_to_tileid,
)

from core.region import Region
from core.settings import load_settings
from core.sources import MBTilesSource, PMTilesSource, TileUnreadable
from core.sources.archive import MAX_TILE_BYTES
from core.sources.base import SourceError
from core.sources.decompress import Damaged, TooLarge, gunzip
from core.sources.pmtiles_directory import MAX_DIRECTORY_BYTES, decode
from core.tiles import Tile
from testkit.archives import directory, gzip_bomb, hand_made_pmtiles, write_mbtiles

TILE = (16, 34000, 22000)
TILE_ID = zxy_to_tileid(*TILE)


def listed(path: Path, zooms: list[int]) -> list[tuple]:
    kind = PMTilesSource if path.suffix == ".pmtiles" else MBTilesSource
    source = kind.at(path, settings=load_settings())
    return [tile.xyz() for chunk in source.tiles(Region(zooms=zooms)) for tile in chunk.tiles]


def reader(path: Path):
    kind = PMTilesSource if path.suffix == ".pmtiles" else MBTilesSource
    return kind.at(path, settings=load_settings()).reader(load_settings())


def test_gunzip_stops_at_its_limit_and_names_a_damaged_stream() -> None:
    assert gunzip(gzip.compress(b"tile") + gzip.compress(b"s"), limit=5) == b"tiles"  # members, as gzip reads them
    with pytest.raises(TooLarge, match="inflates to more than 4 bytes"):
        gunzip(gzip.compress(b"tiles"), limit=4)
    for damaged in (gzip.compress(b"tile")[:-6], b"not gzip", gzip.compress(b"tile") + b"junk"):
        with pytest.raises(Damaged, match="damaged gzip"):
            gunzip(damaged, limit=100)


def test_a_gzip_bomb_tile_fails_alone_without_being_inflated(tmp_path: Path) -> None:
    bomb, fine = gzip_bomb(256 << 20), gzip.compress(b"pixels")  # 256 KiB that claim 256 MiB
    path = hand_made_pmtiles(tmp_path / "bomb.pmtiles", root=directory(
        (TILE_ID, 0, len(bomb), 1), (TILE_ID + 1, len(bomb), len(fine), 1)), tile_data=bomb + fine,
        tile_compression=Compression.GZIP)
    archive = reader(path)
    tracemalloc.start()
    try:
        with pytest.raises(TileUnreadable, match=rf"^tile too large: inflates to more than {MAX_TILE_BYTES} bytes$"):
            archive.read(Tile(*TILE))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MAX_TILE_BYTES + (8 << 20)  # at most the bound was inflated, never the 256 MiB
    assert archive.read(Tile(*tileid_to_zxy(TILE_ID + 1))) == b"pixels"  # the tile beside it reads


@pytest.mark.parametrize("where", ["root", "leaf"])
def test_a_gzip_bomb_directory_is_a_one_line_error_without_being_inflated(tmp_path: Path, where: str) -> None:
    bomb = gzip_bomb(300 << 20)
    parts = {"root": bomb} if where == "root" else {"root": directory((0, 0, len(bomb), 0)), "leaves": bomb}
    path = hand_made_pmtiles(tmp_path / f"{where}.pmtiles", **parts)
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match=rf"'.*{where}.pmtiles' has a damaged (root )?directory \(directory "
                                                rf"inflates to more than {MAX_DIRECTORY_BYTES} bytes"):
            listed(path, [16])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * MAX_DIRECTORY_BYTES + (8 << 20)


def test_a_directory_stored_larger_than_the_bound_is_refused_before_it_is_copied(tmp_path: Path) -> None:
    leaves = bytes(MAX_DIRECTORY_BYTES + 1)
    path = hand_made_pmtiles(tmp_path / "wide.pmtiles", root=directory((0, 0, len(leaves), 0)), leaves=leaves)
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match=rf"a directory of {MAX_DIRECTORY_BYTES + 1} bytes, more than "
                                                rf"tileclass's bound of {MAX_DIRECTORY_BYTES}\)$"):
            listed(path, [16])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MAX_DIRECTORY_BYTES // 2


def test_a_run_of_2_to_the_40_is_refused_and_a_long_valid_run_is_cut_to_the_wanted_zoom(tmp_path: Path) -> None:
    hostile = hand_made_pmtiles(tmp_path / "run.pmtiles", root=directory((0, 0, 3, 2**40)), tile_data=b"png")
    with pytest.raises(SourceError, match=r"has a damaged root directory \(a run length of 1099511627776, more than "
                                            r"the spec's 4294967295\)"):
        listed(hostile, [16])
    # Within the spec: one stored tile for ids 0 .. 2**32 - 2 (zooms 0-15 and most of 16). Zoom 3 has 64 tiles.
    long_run = hand_made_pmtiles(tmp_path / "ocean.pmtiles", root=directory((0, 0, 3, 2**32 - 1)), tile_data=b"png")
    assert sorted(listed(long_run, [3])) == sorted((3, x, y) for x in range(8) for y in range(8))
    assert reader(long_run).read(Tile(15, 1, 2)) == b"png"


@pytest.mark.parametrize(("layout", "problem"), [
    ({"root_offset": 10**12}, r"its root directory ends at byte 1000000000\d+, the file has \d+ bytes"),
    ({"root_length": 50, "root": b"", "tile_data": b""},  # a header alone
     r"its root directory ends at byte 177, the file has 127 bytes"),
    ({"tile_data_length": 10**6}, r"its tile data ends at byte \d+, the file has \d+ bytes"),
])
def test_a_file_shorter_than_its_header_says_is_a_one_line_error(tmp_path: Path, layout: dict,
                                                                 problem: str) -> None:
    parts = {"root": directory((TILE_ID, 0, 3, 1)), "tile_data": b"png"} | layout
    path = hand_made_pmtiles(tmp_path / "short.pmtiles", **parts)
    with pytest.raises(SourceError, match=rf"'.*short.pmtiles' is shorter than its header says: {problem} \(a copy "
                                            r"cut short, or still being copied\?\)$"):
        PMTilesSource.at(path, settings=load_settings())


def test_entries_that_point_at_one_leaf_again_and_again_are_refused(tmp_path: Path) -> None:
    leaf = directory(*[(TILE_ID + i, i, 1, 1) for i in range(3)])
    root = directory(*[(i, 0, len(leaf), 0) for i in range(0, TILE_ID, TILE_ID // 2000)])  # 2,000 pointers, 1 leaf
    path = hand_made_pmtiles(tmp_path / "loop.pmtiles", root=root, leaves=leaf, tile_data=b"png")
    with pytest.raises(SourceError, match="its entries point to more directory bytes than the file holds"):
        listed(path, list(range(17)))


@pytest.mark.parametrize(("entries", "problem"), [
    ([(5, 0, 1, 1), (5, 1, 1, 1)], "tile ids not in strictly increasing order"),
    ([(5, 0, 1, 3), (6, 1, 1, 1)], "a run reaches into the next entry"),
    ([(5, 0, 9, 1)], r"an entry points past the end of the tile data \(9 > 4 bytes\)"),
    ([(5, 0, 9, 0)], r"an entry points past the end of the leaf directories \(9 > 0 bytes\)"),
])
def test_directories_that_break_the_spec_are_refused(entries: list, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode(directory(*entries), gzipped=True, tile_data=4, leaves=0)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 3), st.integers(1, 70000), st.booleans()),
                max_size=40))
def test_directories_decode_as_the_pmtiles_package_reads_them(steps: list[tuple[int, int, int, bool]]) -> None:
    entries, tile_id, offset = [], 0, 0
    for gap, run, length, jump in steps:
        offset += 99 if jump else 0  # a tile stored elsewhere: its offset is written, not implied
        entries.append(Entry(tile_id, offset, length, run))
        tile_id, offset = tile_id + max(run, 1) + gap - 1, offset + length
    stored = serialize_directory(entries)
    decoded = decode(stored, gzipped=True, tile_data=1 << 40, leaves=1 << 40)
    expected = [(e.tile_id, e.offset, e.length, e.run_length) for e in deserialize_directory(stored)]
    assert [decoded.entry(i) for i in range(len(decoded))] == expected


@pytest.mark.parametrize(("stored", "kind"), [("a text row", "TEXT"), (123456789, "INTEGER"), (2.5, "REAL"),
                                               (None, "NULL")])
def test_an_mbtiles_row_that_is_not_a_blob_fails_alone(tmp_path: Path, stored: object, kind: str) -> None:
    path = write_mbtiles(tmp_path / "rows.mbtiles", [(5, 1, 1, b"jpeg"), (5, 1, 2, stored)])
    archive = reader(path)
    assert archive.read(Tile(5, 1, 1)) == b"jpeg"
    with pytest.raises(TileUnreadable, match=rf"^tile_data is {kind}, not a BLOB of image bytes$"):
        archive.read(Tile(5, 1, 2))


@pytest.mark.parametrize(("value", "shown"), [("NULL", "None"), ("2.5", "2.5"), ("'abc'", "'abc'"),
                                              ("70000", "70000")])
def test_an_mbtiles_row_without_integer_coordinates_is_a_one_line_error(tmp_path: Path, value: str,
                                                                       shown: str) -> None:
    path = write_mbtiles(tmp_path / "rows.mbtiles", [(16, 1, 1, b"jpeg"), (16, 1, 2, b"jpeg")])
    with sqlite3.connect(path) as connection:
        connection.execute(f"UPDATE tiles SET tile_row = {value} WHERE tile_row = {(1 << 16) - 1 - 2}")
    with pytest.raises(SourceError, match=rf"rows.mbtiles' has a tile at zoom 16 with tile_column 1 and tile_row "
                                            rf"{shown}: MBTiles coordinates are integers 0..65535 at zoom 16$"):
        listed(path, [16])
