"""MBTiles archives (the SQLite ``tiles`` table or view of the MBTiles spec, rows counted TMS-wise from the south).

The producer never loads the whole file: per zoom it asks for the region's column and row range only, in the
order of the spec's unique index ``(zoom_level, tile_column, tile_row)``, eight chunks' rows a fetch, and turns
each row into an XYZ tile. A chunk holds up to ``chunk_size`` tiles of one column; its key ``(z, x, tms_row)`` is
the last row listed, so a resumed pass asks for the rows after it. Workers read a tile by key on a read-only
connection of their own process.
"""

from __future__ import annotations

import sqlite3
import threading
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

from core.errors import TileRootError
from core.region import Region
from core.sources.archive import MAX_TILE_BYTES, ArchiveSource, TileUnreadable, capped
from core.tiles import MAX_ZOOM, Tile, flip_row
from core.walk import Chunk, Key

_ROWS = ("SELECT tile_column, tile_row FROM tiles WHERE zoom_level = ? AND tile_column BETWEEN ? AND ?"
         " AND tile_row BETWEEN ? AND ? AND (tile_column > ? OR (tile_column = ? AND tile_row > ?))"
         " ORDER BY tile_column, tile_row LIMIT ?")
_ALL_ROWS = _ROWS.replace(" AND tile_row BETWEEN ? AND ?", "")  # a region without extent: no row test at all
_TILE = ("SELECT CASE WHEN length(tile_data) > ? THEN NULL ELSE tile_data END, length(tile_data) FROM tiles"
         " WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?")


class MBTilesFile:
    """An MBTiles file opened read-only; one connection shared by the process's threads, one query at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, check_same_thread=False)
            self.connection.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles LIMIT 0")
        except sqlite3.Error as exc:
            raise TileRootError(f"{str(path)!r} is not a readable MBTiles file ({exc})") from None
        self._lock = threading.Lock()

    def zooms(self, region: Region) -> list[int]:
        """The zoom levels that have tiles and that the region wants (one indexed probe per zoom)."""
        with self._lock:
            return [z for z in range(MAX_ZOOM + 1) if region.allows_zoom(z) and self.connection.execute(
                "SELECT 1 FROM tiles WHERE zoom_level = ? LIMIT 1", (z,)).fetchone()]

    def rows(self, zoom: int, columns: tuple[int, int], tms_rows: tuple[int, int], after: tuple[int, int],
             limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` (column, TMS row) pairs of ``zoom`` in ``columns`` and ``tms_rows``, after ``after``, in
        index order."""
        top = (1 << zoom) - 1
        query, span = (_ALL_ROWS, ()) if tms_rows == (0, top) else (_ROWS, tms_rows)
        with self._lock:
            return self.connection.execute(query, (zoom, *columns, *span, after[0], after[0], after[1], limit))\
                .fetchall()

    def read(self, tile: Tile) -> bytes:
        if tile.z is None or tile.x is None or tile.y is None:
            raise TileUnreadable("a tile of an MBTiles archive needs coordinates")
        try:
            with self._lock:
                row = self.connection.execute(_TILE, (MAX_TILE_BYTES, tile.z, tile.x, flip_row(tile.z, tile.y)))\
                    .fetchone()
        except sqlite3.DatabaseError as exc:  # a damaged page: this tile's problem
            raise TileUnreadable(f"unreadable MBTiles row ({exc})") from None
        if row is not None and row[0] is None and row[1] is not None:
            raise TileUnreadable(f"tile too large: {row[1]} bytes > {MAX_TILE_BYTES}")
        return capped(None if row is None else bytes(row[0]), tile, "MBTiles")


@dataclass(frozen=True)
class MBTilesSource(ArchiveSource):
    kind: ClassVar[str] = "mbtiles"
    suffix: ClassVar[str] = ".mbtiles"

    def open_file(self, path: Path) -> MBTilesFile:
        return MBTilesFile(path)

    def list_tiles(self, archive: MBTilesFile, region: Region, *, after: Key | None,
                   chunk_size: int) -> Iterator[Chunk]:
        for zoom in archive.zooms(region):
            if after is not None and zoom < after[0]:
                continue
            position = (after[1], after[2]) if after is not None and zoom == after[0] else (-1, -1)
            top = (1 << zoom) - 1
            columns = region.columns(zoom) or (0, top)
            north, south = region.row_span(zoom) or (0, top)
            while True:
                rows = archive.rows(zoom, columns, (top - south, top - north), position, chunk_size * 8)
                if not rows:
                    break
                yield from _column_chunks(zoom, rows, region, chunk_size)
                position = rows[-1]


def _column_chunks(zoom: int, rows: list[tuple[int, int]], region: Region, size: int) -> Iterator[Chunk]:
    """Rows of one query as chunks of at most ``size`` tiles of one column, keyed by their last row.

    The hot loop of a million-tile listing: column ends are found by bisection, and rows are turned into XYZ tiles
    (and checked against the region, only where it cuts the column) in one comprehension per chunk.
    """
    top = (1 << zoom) - 1
    start = 0
    while start < len(rows):
        column = rows[start][0]
        end = min(bisect_right(rows, (column, 1 << 62), lo=start), start + size)
        ranges = region.rows(zoom, column)
        tiles = [Tile(zoom, column, top - tms_row) for _, tms_row in rows[start:end]]
        if ranges is not None:
            tiles = [tile for tile in tiles if any(low <= tile.y <= high for low, high in ranges)]  # type: ignore
        yield Chunk(key=(zoom, column, rows[end - 1][1]), tiles=tiles, column=(zoom, column), last=True)
        start = end
