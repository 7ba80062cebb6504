"""PMTiles archives (v3), through the ``pmtiles`` package's header and directory codecs; the file is memory-mapped.

Tiles are addressed by Hilbert tile id, ids of one zoom forming one contiguous range. The producer walks the
directories in id order and opens only the leaf directories whose id range meets a wanted zoom after the resume
position, expanding run-length entries (one stored tile for many ids); a chunk's key is ``(last tile id,)``.
Workers look a tile id up through the same directories, the ones they decoded last kept in a small cache.
"""

from __future__ import annotations

import gzip
import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from pmtiles.tile import (
    Compression,
    Entry,
    TileType,
    deserialize_directory,
    deserialize_header,
    find_tile,
    tileid_to_zxy,
    zxy_to_tileid,
)

from core.errors import TileRootError
from core.region import Region
from core.sources.archive import ArchiveSource, TileUnreadable, capped
from core.tiles import MAX_ZOOM, Tile
from core.walk import Chunk, Key

IMAGE_TYPES = (TileType.PNG, TileType.JPEG, TileType.WEBP)
MAX_DEPTH = 4  # root plus leaf levels, as the spec bounds it


def first_id(zoom: int) -> int:
    """The tile id of zoom ``zoom``'s first tile: ids of lower zooms come before it."""
    return ((1 << 2 * zoom) - 1) // 3


class PMTilesFile:
    """A PMTiles file, memory-mapped read-only; safe to read from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open("rb") as handle:
                self.data: Any = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            self.header = deserialize_header(self.data[:127])
        except Exception as exc:  # the codec raises exceptions of its own (a bad magic number, a v2 file)
            raise TileRootError(f"{str(path)!r} is not a readable PMTiles v3 file "
                                f"({exc.__class__.__name__}: {str(exc)[:120]})") from None
        kind = self.header["tile_type"]
        if kind not in IMAGE_TYPES:
            raise TileRootError(f"{str(path)!r} holds {getattr(kind, 'name', kind)} tiles, not imagery: tileclass "
                                f"reads {', '.join(t.name for t in IMAGE_TYPES)} tiles")
        self.compression = self.header["tile_compression"]
        if self.compression not in (Compression.NONE, Compression.UNKNOWN, Compression.GZIP):
            raise TileRootError(f"{str(path)!r} compresses its tiles with {self.compression.name}: tileclass reads "
                                "uncompressed or gzip tiles")
        self.directory = lru_cache(maxsize=256)(self._directory)

    def _directory(self, offset: int, length: int) -> list[Entry]:
        return deserialize_directory(self.data[offset : offset + length])

    def zoom_range(self, region: Region) -> list[int]:
        return [z for z in range(self.header["min_zoom"], min(self.header["max_zoom"], MAX_ZOOM) + 1)
                if region.allows_zoom(z)]

    def tile_ids(self, wanted: list[tuple[int, int]], after: int) -> Iterator[int]:
        """Every stored tile id in one of the ``wanted`` [first, end) ranges and above ``after``, in order."""
        yield from self._ids(self.header["root_offset"], self.header["root_length"], 0, wanted, after)

    def _ids(self, offset: int, length: int, depth: int, wanted: list[tuple[int, int]],
             after: int) -> Iterator[int]:
        entries = self._directory(offset, length)  # not cached: a listing reads each directory once
        for index, entry in enumerate(entries):
            if entry.run_length:
                for tile_id in range(max(entry.tile_id, after + 1), entry.tile_id + entry.run_length):
                    if any(low <= tile_id < high for low, high in wanted):
                        yield tile_id
                continue
            end = entries[index + 1].tile_id if index + 1 < len(entries) else 1 << 62
            if depth + 1 < MAX_DEPTH and end > after + 1 and any(low < end and entry.tile_id < high
                                                                 for low, high in wanted):
                yield from self._ids(self.header["leaf_directory_offset"] + entry.offset, entry.length, depth + 1,
                                     wanted, after)

    def read(self, tile: Tile) -> bytes:
        if tile.z is None or tile.x is None or tile.y is None:
            raise TileUnreadable("a tile of a PMTiles archive needs coordinates")
        tile_id = zxy_to_tileid(tile.z, tile.x, tile.y)
        offset, length = self.header["root_offset"], self.header["root_length"]
        try:
            for _ in range(MAX_DEPTH):
                entry = find_tile(self.directory(offset, length), tile_id)
                if entry is None:
                    break
                if entry.run_length:
                    start = self.header["tile_data_offset"] + entry.offset
                    data = capped(self.data[start : start + entry.length], tile, "PMTiles")
                    return gzip.decompress(data) if self.compression == Compression.GZIP else data
                offset, length = self.header["leaf_directory_offset"] + entry.offset, entry.length
        except (OSError, EOFError, ValueError) as exc:  # a damaged directory or gzip stream
            raise TileUnreadable(f"unreadable PMTiles entry ({exc.__class__.__name__}: {str(exc)[:120]})") from None
        return capped(None, tile, "PMTiles")


@dataclass(frozen=True)
class PMTilesSource(ArchiveSource):
    kind: ClassVar[str] = "pmtiles"
    suffix: ClassVar[str] = ".pmtiles"

    def open_file(self, path: Path) -> PMTilesFile:
        return PMTilesFile(path)

    def list_tiles(self, archive: PMTilesFile, region: Region, *, after: Key | None,
                   chunk_size: int) -> Iterator[Chunk]:
        wanted = [(first_id(z), first_id(z + 1)) for z in archive.zoom_range(region)]
        tiles: list[Tile] = []
        last = -1 if after is None else int(after[0])
        for tile_id in archive.tile_ids(wanted, last):
            z, x, y = tileid_to_zxy(tile_id)
            last = tile_id
            if region.contains(z, x, y):
                tiles.append(Tile(z, x, y))
            if len(tiles) >= chunk_size:
                yield Chunk(key=(last,), tiles=tiles, column=None, last=True)
                tiles = []
        if tiles:
            yield Chunk(key=(last,), tiles=tiles, column=None, last=True)
