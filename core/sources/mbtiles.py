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
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from core.errors import HostError
from core.region import Region
from core.sources.archive import ArchiveSource, capped
from core.sources.base import MAX_TILE_BYTES, Chunk, Key, SourceError, TileUnreadable
from core.tiles import MAX_ZOOM, Tile, flip_row

_ROWS = ("SELECT tile_column, tile_row FROM tiles WHERE zoom_level = ? AND tile_column BETWEEN ? AND ?"
         " AND tile_row BETWEEN ? AND ? AND (tile_column > ? OR (tile_column = ? AND tile_row > ?))"
         " ORDER BY tile_column, tile_row LIMIT ?")
_ALL_ROWS = _ROWS.replace(" AND tile_row BETWEEN ? AND ?", "")  # a region without extent: no row test at all
# The row's bytes only when they are a BLOB of a usable size: TEXT, a number or NULL is this tile's problem.
_TILE = ("SELECT CASE WHEN typeof(tile_data) = 'blob' AND length(tile_data) <= ? THEN tile_data END,"
         " typeof(tile_data), length(tile_data) FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?")
QUERY_SECONDS = 10.0  # one query of the spec's indexed lookups takes milliseconds; a view may never end
_CHECK_EVERY = 10_000  # SQLite virtual machine steps between two looks at the clock


class MBTilesFile:
    """An MBTiles file opened read-only; one connection shared by the process's threads, one query at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, check_same_thread=False)
            self.connection.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles LIMIT 0")
        except sqlite3.Error as exc:
            raise SourceError(f"{str(path)!r} is not a readable MBTiles file ({exc})") from None
        self._lock = threading.Lock()
        self._deadline = float("inf")
        # A query past its deadline is interrupted (sqlite3.OperationalError): a ``tiles`` view that never ends
        # (a recursive CTE) or a table without the spec's index cannot hold a producer or a worker for ever.
        self.connection.set_progress_handler(lambda: time.monotonic() > self._deadline, _CHECK_EVERY)

    def _query(self, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
        """The rows of one query, interrupted after ``QUERY_SECONDS``; callers hold the lock."""
        self._deadline = time.monotonic() + QUERY_SECONDS
        try:
            return self.connection.execute(sql, parameters).fetchall()
        except sqlite3.OperationalError:
            if time.monotonic() > self._deadline:
                raise _Overdue(f"{str(self.path)!r}: a query of its tiles ran past {QUERY_SECONDS:.0f} s (is "
                               "'tiles' a view that never ends, or a table without the MBTiles index on "
                               "zoom_level, tile_column, tile_row?)") from None
            raise
        finally:
            self._deadline = float("inf")

    def _listing(self, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
        """``_query`` for the producer's listing: whatever goes wrong is a one-line ``SourceError``."""
        try:
            with self._lock:
                return self._query(sql, parameters)
        except _Overdue as exc:
            raise SourceError(str(exc)) from None
        except sqlite3.Error as exc:
            raise SourceError(f"{str(self.path)!r}: its tiles cannot be listed ({exc})") from None

    def zooms(self, region: Region) -> list[int]:
        """The zoom levels that have tiles and that the region wants (one indexed probe per zoom)."""
        return [z for z in range(MAX_ZOOM + 1) if region.allows_zoom(z) and self._listing(
            "SELECT 1 FROM tiles WHERE zoom_level = ? LIMIT 1", (z,))]

    def rows(self, zoom: int, columns: tuple[int, int], tms_rows: tuple[int, int], after: tuple[int, int],
             limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` (column, TMS row) pairs of ``zoom`` in ``columns`` and ``tms_rows``, after ``after``, in
        index order; ``SourceError`` for a row whose coordinates are not integers of the zoom."""
        top = (1 << zoom) - 1
        query, span = (_ALL_ROWS, ()) if tms_rows == (0, top) else (_ROWS, tms_rows)
        found = self._listing(query, (zoom, *columns, *span, after[0], after[0], after[1], limit))
        for column, row in found:
            if type(column) is not int or type(row) is not int or not 0 <= row <= top:
                raise SourceError(f"{str(self.path)!r} has a tile at zoom {zoom} with tile_column {column!r} and "
                                  f"tile_row {row!r}: MBTiles coordinates are integers 0..{top} at zoom {zoom}")
        return found

    def read(self, tile: Tile) -> bytes:
        """The tile's bytes; ``TileUnreadable`` for a missing, damaged or non-BLOB row, ``HostError`` when the
        lookup runs past its deadline (this host's disk or copy of the file, not the tile)."""
        if tile.z is None or tile.x is None or tile.y is None:
            raise TileUnreadable("a tile of an MBTiles archive needs coordinates")
        try:
            with self._lock:
                rows = self._query(_TILE, (MAX_TILE_BYTES, tile.z, tile.x, flip_row(tile.z, tile.y)))
        except _Overdue as exc:
            raise HostError(str(exc)) from None
        except sqlite3.DatabaseError as exc:  # a damaged page: this tile's problem
            raise TileUnreadable(f"unreadable MBTiles row ({exc})") from None
        if not rows:
            return capped(None, tile, "MBTiles")
        data, kind, size = rows[0]
        if kind != "blob":
            raise TileUnreadable(f"tile_data is {kind.upper()}, not a BLOB of image bytes")
        if data is None:
            raise TileUnreadable(f"tile too large: {size} bytes > {MAX_TILE_BYTES}")
        return capped(bytes(data), tile, "MBTiles")


class _Overdue(Exception):
    """A query ran past ``QUERY_SECONDS``."""


@dataclass(frozen=True)
class MBTilesSource(ArchiveSource):
    kind: ClassVar[str] = "mbtiles"
    suffixes: ClassVar[tuple[str, ...]] = (".mbtiles",)

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
