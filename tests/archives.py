"""MBTiles and PMTiles archives built at test time from tile bytes (the spec's schema; PMTiles via the pmtiles package's
own converter), so that archive sources are tested on files made the way tile tools make them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from pmtiles.convert import mbtiles_to_pmtiles

from core.tiles import Tile, flip_row


def write_mbtiles(path: Path, tiles: Iterable[tuple[int, int, int, bytes]], *, image_format: str = "jpeg") -> Path:
    """An MBTiles 1.3 file of ``(z, x, y, data)`` given XYZ-wise (stored TMS-wise, as the spec says)."""
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
