"""MBTiles and PMTiles archives built at test time from tile bytes (the spec's schema; PMTiles via the pmtiles package's
own converter), so that archive sources are tested on files made the way tile tools make them; and hostile ones laid
out by hand (``hand_made_pmtiles``, ``endless_mbtiles``, ``gzip_bomb``), as no tool makes them."""

from __future__ import annotations

import gzip
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pmtiles.convert import mbtiles_to_pmtiles
from pmtiles.tile import Compression, Entry, TileType, serialize_directory, serialize_header

from core.tiles import Tile, flip_row


def write_mbtiles(path: Path, tiles: Iterable[tuple[int, int, int, Any]], *, image_format: str = "jpeg") -> Path:
    """An MBTiles 1.3 file of ``(z, x, y, data)`` given XYZ-wise (stored TMS-wise, as the spec says); ``data`` is
    stored as given (bytes as a BLOB, a str as TEXT, an int as INTEGER, None as NULL)."""
    rows = [(z, x, flip_row(z, y), data) for z, x, y, data in tiles]
    zooms = [row[0] for row in rows] or [0]
    with sqlite3.connect(path) as connection:
        connection.executescript("""
            CREATE TABLE metadata (name TEXT, value TEXT);
            CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
            CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);
        """)
        connection.executemany("INSERT INTO metadata VALUES (?, ?)", [
            ("name", path.stem), ("format", image_format), ("minzoom", str(min(zooms))),
            ("maxzoom", str(max(zooms)))])
        connection.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)", rows)
    return path


def mbtiles_from_tree(path: Path, root: Path, tiles: Iterable[Tile]) -> Path:
    """The tiles of a z/x/y tree (as ``tests.worker.support.tile_tree`` writes it) packed in one MBTiles file."""
    return write_mbtiles(path, [(*tile.xyz(), (root / str(tile.path)).read_bytes()) for tile in tiles])


def pmtiles_from_mbtiles(path: Path, mbtiles: Path) -> Path:
    """The same tiles as a PMTiles v3 file, written by the pmtiles package's converter."""
    mbtiles_to_pmtiles(str(mbtiles), str(path), None)
    return path


def endless_mbtiles(path: Path) -> Path:
    """An MBTiles file whose ``tiles`` is a view over a recursive CTE, every row above zoom 24: a query for a tile
    of a zoom tileclass reads runs for ever."""
    with sqlite3.connect(path) as connection:
        connection.executescript("""
            CREATE TABLE metadata (name TEXT, value TEXT);
            CREATE VIEW tiles AS WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n)
                SELECT 25 + i % 7 AS zoom_level, i AS tile_column, i AS tile_row, x'00' AS tile_data FROM n;
        """)
    return path


def directory(*entries: tuple[int, int, int, int]) -> bytes:
    """A gzip PMTiles directory of ``(tile id, offset, length, run length)`` entries, as the pmtiles package writes
    it (run length 0: the entry points to a leaf directory)."""
    return serialize_directory([Entry(*entry) for entry in entries])


def hand_made_pmtiles(path: Path, *, root: bytes, leaves: bytes = b"", tile_data: bytes = b"",
                      tile_compression: Compression = Compression.NONE, **header: int) -> Path:
    """A PMTiles v3 file laid out by hand: header, root directory, leaf directories, tile data, in that order;
    ``header`` overrides any field of the header (offsets and lengths included)."""
    fields: dict[str, Any] = {
        "root_offset": 127, "root_length": len(root), "metadata_offset": 127 + len(root), "metadata_length": 0,
        "leaf_directory_offset": 127 + len(root), "leaf_directory_length": len(leaves),
        "tile_data_offset": 127 + len(root) + len(leaves), "tile_data_length": len(tile_data),
        "clustered": True, "internal_compression": Compression.GZIP, "tile_compression": tile_compression,
        "tile_type": TileType.PNG, "min_zoom": 0, "max_zoom": 20,
    }
    path.write_bytes(serialize_header(fields | header) + root + leaves + tile_data)
    return path


def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes (a whole number of MiB) gzipped as one-MiB members one after the other, as ``cat`` joins
    gzip files: about 1 KiB per MiB, built in milliseconds, inflated whole by ``gzip.decompress``."""
    member = gzip.compress(bytes(1 << 20), compresslevel=9, mtime=0)
    return member * (size >> 20)
