"""MBTiles and PMTiles sources on real archive files: what the producer lists (region, zooms, TMS rows, resuming),
what a worker reads by key, and the one-line errors for files that are not usable archives."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import pytest
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import write

from core.bbox import BBox
from core.region import Region
from core.settings import load_settings
from core.sources import MBTilesSource, PMTilesSource, TileUnreadable, source_from_record
from core.sources.archive import MAX_TILE_BYTES
from core.sources.base import SourceError
from core.sources.layouts import Layout
from core.sources.mbtiles import _ALL_ROWS, _ROWS
from core.sources.spec import source_for
from core.tiles import Tile
from testkit.archives import pmtiles_from_mbtiles, write_mbtiles

# Two zooms: a 12 x 9 block at z17 and its parents at z16 (6 x 5), each tile's bytes naming it.
Z17 = [(17, 70400 + i, 42990 + j) for i in range(12) for j in range(9)]
Z16 = sorted({(16, x // 2, y // 2) for _, x, y in Z17})


def data_of(z: int, x: int, y: int) -> bytes:
    return f"tile {z}/{x}/{y}".encode()


@pytest.fixture
def archives(tmp_path: Path) -> dict[str, MBTilesSource | PMTilesSource]:
    mbtiles = write_mbtiles(tmp_path / "city.mbtiles", [(*t, data_of(*t)) for t in Z16 + Z17])
    pmtiles = pmtiles_from_mbtiles(tmp_path / "city.pmtiles", mbtiles)
    settings = load_settings()
    return {"mbtiles": MBTilesSource.at(mbtiles, settings=settings),
            "pmtiles": PMTilesSource.at(pmtiles, settings=settings)}


def listed(source: MBTilesSource | PMTilesSource, region: Region | None = None, **options) -> list[tuple]:
    return [tile.xyz() for chunk in source.tiles(region, **options) for tile in chunk.tiles]


@pytest.mark.parametrize("kind", ["mbtiles", "pmtiles"])
def test_an_archive_lists_every_tile_xyz_wise_and_reads_each_by_key(archives, kind: str) -> None:
    source = archives[kind]
    assert sorted(listed(source)) == sorted(Z16 + Z17)  # TMS rows of the MBTiles turned into XYZ
    reader = source.reader(load_settings())
    assert all(reader.read(Tile(*t)) == data_of(*t) for t in Z16 + Z17)
    with pytest.raises(TileUnreadable, match=f"no tile 17/1/1 in the {'MBTiles' if kind == 'mbtiles' else 'PMTiles'}"):
        reader.read(Tile(17, 1, 1))
    assert source_from_record(json.loads(json.dumps(source.to_record()))) == source


@pytest.mark.parametrize("kind", ["mbtiles", "pmtiles"])
def test_a_region_and_zooms_list_only_their_tiles(archives, kind: str) -> None:
    west, south, *_ = Tile(17, 70402, 42995).bounds()
    box = BBox.of([west + 1e-7, south + 1e-7, *Tile(17, 70404, 42993).bounds()[2:]])
    region = Region(zooms=[17], bbox=box)
    expected = [t for t in Z17 if region.contains(*t)]
    assert len(expected) == 9  # a 3 x 3 block
    assert sorted(listed(archives[kind], region)) == sorted(expected)
    assert sorted(listed(archives[kind], Region(zooms=[16]))) == Z16


@pytest.mark.parametrize("kind", ["mbtiles", "pmtiles"])
def test_a_pass_resumed_after_any_chunk_lists_exactly_the_rest(archives, kind: str) -> None:
    source = archives[kind]
    chunks = list(source.tiles(None, chunk_size=7))
    assert len(chunks) > 4 and all(len(chunk.tiles) <= 7 for chunk in chunks)
    everything = [tile.xyz() for chunk in chunks for tile in chunk.tiles]
    for index in (0, 3, len(chunks) - 2):
        done = [tile.xyz() for chunk in chunks[: index + 1] for tile in chunk.tiles]
        rest = listed(source, after=json.loads(json.dumps(chunks[index].key)), chunk_size=7)  # as a job stores it
        assert done + rest == everything


def test_mbtiles_chunks_are_columns_and_the_listing_uses_the_spec_index(archives) -> None:
    chunks = list(archives["mbtiles"].tiles(None))
    assert all(chunk.column == (tile.z, tile.x) for chunk in chunks for tile in chunk.tiles)
    with sqlite3.connect(archives["mbtiles"].path) as connection:
        for query, values in ((_ROWS, (17, 0, 9, 0, 9, -1, -1, -1, 10)), (_ALL_ROWS, (17, 0, 9, -1, -1, -1, 10))):
            plan = " ".join(str(row[-1]) for row in connection.execute(f"EXPLAIN QUERY PLAN {query}", values))
            assert "INDEX" in plan and "SCAN tiles" not in plan  # never a full scan of the file, however big


def test_a_pmtiles_with_leaf_directories_and_repeated_tiles_lists_and_reads_every_tile(tmp_path: Path) -> None:
    tiles = [(14, x, y) for x in range(8000, 8300) for y in range(5000, 5300)]  # 90,000 tiles: leaves needed
    with write(tmp_path / "big.pmtiles") as writer:
        for tile_id in sorted(zxy_to_tileid(*t) for t in tiles):
            writer.write_tile(tile_id, b"same" if tile_id % 3 else str(tile_id).encode())  # runs of equal tiles
        writer.finalize({"tile_type": TileType.JPEG, "tile_compression": Compression.NONE, "min_zoom": 14,
                         "max_zoom": 14, "min_lon_e7": 0, "min_lat_e7": 0, "max_lon_e7": 0, "max_lat_e7": 0,
                         "center_zoom": 14, "center_lon_e7": 0, "center_lat_e7": 0}, {})
    source = PMTilesSource.at(tmp_path / "big.pmtiles", settings=load_settings())
    assert source.open_file(Path(source.path)).header["leaf_directory_length"] > 0
    assert sorted(listed(source)) == sorted(tiles)
    reader = source.reader(load_settings())
    for t in tiles[::997]:
        tile_id = zxy_to_tileid(*t)
        assert reader.read(Tile(*t)) == (b"same" if tile_id % 3 else str(tile_id).encode())
    assert listed(source, Region(zooms=[13])) == []


def test_gzip_pmtiles_tiles_are_read_uncompressed_and_vector_archives_are_refused(tmp_path: Path) -> None:
    header = {"tile_compression": Compression.GZIP, "min_zoom": 3, "max_zoom": 3, "min_lon_e7": 0, "min_lat_e7": 0,
              "max_lon_e7": 0, "max_lat_e7": 0, "center_zoom": 3, "center_lon_e7": 0, "center_lat_e7": 0}
    for name, kind in (("ortho", TileType.PNG), ("roads", TileType.MVT)):
        with write(tmp_path / f"{name}.pmtiles") as writer:
            writer.write_tile(zxy_to_tileid(3, 1, 2), gzip.compress(b"pixels"))
            writer.finalize({**header, "tile_type": kind}, {})
    source = PMTilesSource.at(tmp_path / "ortho.pmtiles", settings=load_settings())
    assert source.reader(load_settings()).read(Tile(3, 1, 2)) == b"pixels"
    with pytest.raises(SourceError, match=r"holds MVT tiles, not imagery: tileclass reads PNG, JPEG, WEBP tiles"):
        PMTilesSource.at(tmp_path / "roads.pmtiles", settings=load_settings())


def test_files_that_are_not_archives_fail_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.mbtiles").write_text("hello")
    (tmp_path / "notes.pmtiles").write_text("hello")
    (tmp_path / "empty.pmtiles").write_bytes(b"")
    settings = load_settings()
    with pytest.raises(SourceError, match=r"'.*notes.mbtiles' is not a readable MBTiles file"):
        MBTilesSource.at(tmp_path / "notes.mbtiles", settings=settings)
    for name in ("notes.pmtiles", "empty.pmtiles"):
        with pytest.raises(SourceError, match=r"is not a readable PMTiles v3 file"):
            PMTilesSource.at(tmp_path / name, settings=settings)
    with pytest.raises(SourceError, match=r"mbtiles file '.*missing.mbtiles' does not exist"):
        MBTilesSource.at(tmp_path / "missing.mbtiles", settings=settings)


def test_an_oversized_mbtiles_row_fails_alone_without_being_copied(tmp_path: Path) -> None:
    path = write_mbtiles(tmp_path / "big.mbtiles", [(5, 1, 1, b"ok"), (5, 1, 2, b"\0" * (MAX_TILE_BYTES + 1))])
    reader = MBTilesSource.at(path, settings=load_settings()).reader(load_settings())
    assert reader.read(Tile(5, 1, 1)) == b"ok"
    with pytest.raises(TileUnreadable, match=rf"tile too large: {MAX_TILE_BYTES + 1} bytes > {MAX_TILE_BYTES}"):
        reader.read(Tile(5, 1, 2))


def test_a_worker_finds_its_own_copy_by_name_and_a_replaced_archive_is_opened_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    producer_copy = write_mbtiles(tmp_path / "a.mbtiles", [(5, 1, 1, b"old")])
    source = MBTilesSource.at(producer_copy, settings=load_settings())
    worker_copy = tmp_path / "mnt" / "a.mbtiles"
    worker_copy.parent.mkdir()
    write_mbtiles(worker_copy, [(5, 1, 1, b"worker's")])
    monkeypatch.setenv("TILECLASS_SOURCES", json.dumps({source.name: str(worker_copy)}))
    assert source.reader(load_settings()).read(Tile(5, 1, 1)) == b"worker's"
    worker_copy.unlink()
    with pytest.raises(SourceError, match=r"cannot be opened on this host \(No such file or directory\)"):
        source.reader(load_settings())
    write_mbtiles(worker_copy, [(5, 1, 1, b"new")])
    assert source.reader(load_settings()).read(Tile(5, 1, 1)) == b"new"


def test_source_specs_name_archives_folders_and_named_sources(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = write_mbtiles(tmp_path / "city.mbtiles", [(5, 1, 1, b"x")])
    (tmp_path / "tiles").mkdir()
    (tmp_path / "readme.txt").write_text("not tiles")
    monkeypatch.setenv("TILECLASS_SOURCES", json.dumps({"city": str(archive)}))
    monkeypatch.setenv("TILECLASS_TILE_ROOTS", json.dumps({"ortho": str(tmp_path / "tiles")}))
    settings, layout = load_settings(), Layout.parse()
    named = source_for("@city", settings=settings)
    assert (named.kind, named.name, named.path) == ("mbtiles", "city", str(archive))
    assert source_for(str(archive), settings=settings).name == "city"
    with pytest.raises(SourceError, match=r"^--layout and --scheme apply to folders; a mbtiles source addresses"):
        source_for(str(archive), layout=layout, settings=settings)
    assert source_for("@ortho", layout=layout, settings=settings).to_record()["kind"] == "folder"
    with pytest.raises(SourceError, match=r"^unknown source @nope: this host names @city, @ortho$"):
        source_for("@nope", settings=settings)
    with pytest.raises(SourceError, match=r"readme.txt' is a file of a kind tileclass does not read: SOURCE is a "
                                            r"folder, a .mbtiles, .pmtiles, .tif or .tiff file, an http\(s\):// URL "
                                            r"template, or @NAME"):
        source_for(str(tmp_path / "readme.txt"), settings=settings)
