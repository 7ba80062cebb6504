"""PMTiles archives (v3): the header through the ``pmtiles`` package's codec, the directories through
``core.sources.pmtiles_directory`` (decoded with bounds); the file is memory-mapped.

Tiles are addressed by Hilbert tile id, ids of one zoom forming one contiguous range. The producer walks the
directories in id order and opens only the leaf directories whose id range meets a wanted zoom after the resume
position, cutting run-length entries (one stored tile for many ids) to the wanted ranges; a chunk's key is
``(last tile id,)``. Workers look a tile id up through the same directories, the ones they decoded last kept in a
cache bounded by their entries. Nothing is inflated without a bound: a gzip tile to ``MAX_TILE_BYTES`` (the cap on
any tile's bytes), a directory to ``MAX_DIRECTORY_BYTES``.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pmtiles.tile import Compression, TileType, deserialize_header, tileid_to_zxy, zxy_to_tileid

from core.bbox import BBox
from core.errors import TileError
from core.region import Region
from core.sources.archive import ArchiveSource, capped
from core.sources.base import MAX_TILE_BYTES, Chunk, Key, SourceError, SourceInfo, TileUnreadable
from core.sources.decompress import Damaged, TooLarge, gunzip
from core.sources.pmtiles_directory import (
    MAX_DIRECTORY_BYTES,
    MAX_TILE_ID,
    DamagedDirectory,
    Directory,
    DirectoryCache,
    decode,
)
from core.tiles import MAX_LAT, MAX_ZOOM, Tile

IMAGE_TYPES = (TileType.PNG, TileType.JPEG, TileType.WEBP)
READ_COMPRESSIONS = (Compression.NONE, Compression.UNKNOWN, Compression.GZIP)
MAX_DEPTH = 4  # root plus leaf levels, as the spec bounds it
HEADER_BYTES = 127
Ranges = list[tuple[int, int]]  # [first, end) tile id ranges, in order and apart


def first_id(zoom: int) -> int:
    """The tile id of zoom ``zoom``'s first tile: ids of lower zooms come before it."""
    return ((1 << 2 * zoom) - 1) // 3


class PMTilesFile:
    """A PMTiles file, memory-mapped read-only; safe to read from several threads.

    A file shorter than the sections its header declares (a copy cut short or still under way) is refused when it
    is opened (``SourceError``: on a worker, the host's problem); so is a damaged root directory.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open("rb") as handle:
                self.data: Any = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            self.header: dict[str, Any] = dict(deserialize_header(self.data[:HEADER_BYTES]))
        except Exception as exc:  # the codec raises exceptions of its own (a bad magic number, a v2 file)
            raise SourceError(f"{str(path)!r} is not a readable PMTiles v3 file "
                              f"({exc.__class__.__name__}: {str(exc)[:120]})") from None
        kind = self.header["tile_type"]
        if kind not in IMAGE_TYPES:
            raise SourceError(f"{str(path)!r} holds {getattr(kind, 'name', kind)} tiles, not imagery: tileclass "
                              f"reads {', '.join(t.name for t in IMAGE_TYPES)} tiles")
        for part, field in (("tiles", "tile_compression"), ("directories", "internal_compression")):
            if self.header[field] not in READ_COMPRESSIONS:
                raise SourceError(f"{str(path)!r} compresses its {part} with {self.header[field].name}: tileclass "
                                  f"reads uncompressed or gzip {part}")
        self.compression = self.header["tile_compression"]
        self._check_length()
        self._cache = DirectoryCache()
        try:
            self.root = self.directory(self.header["root_offset"], self.header["root_length"])
        except DamagedDirectory as exc:
            raise SourceError(f"{str(path)!r} has a damaged root directory ({exc})") from None

    def _check_length(self) -> None:
        size = len(self.data)
        for section in ("root", "metadata", "leaf_directory", "tile_data"):
            end = self.header[f"{section}_offset"] + self.header[f"{section}_length"]
            if end > size:
                name = {"root": "root directory", "leaf_directory": "leaf directories"}.get(section, section)
                raise SourceError(f"{str(self.path)!r} is shorter than its header says: its "
                                  f"{name.replace('_', ' ')} ends at byte {end}, the file has {size} bytes "
                                  "(a copy cut short, or still being copied?)")

    def directory(self, offset: int, length: int) -> Directory:
        """The directory stored at ``offset`` (decoded once, then kept in the cache); ``DamagedDirectory``."""
        cached = self._cache.get((offset, length))
        if cached is None:
            cached = self._decode(offset, length)
            self._cache.put((offset, length), cached)
        return cached

    def _decode(self, offset: int, length: int) -> Directory:
        if length > MAX_DIRECTORY_BYTES:  # refused before it is copied out of the file
            raise DamagedDirectory(f"a directory of {length} bytes, more than tileclass's bound of "
                                   f"{MAX_DIRECTORY_BYTES}")
        return decode(self.data[offset : offset + length],
                      gzipped=self.header["internal_compression"] != Compression.NONE,
                      tile_data=self.header["tile_data_length"], leaves=self.header["leaf_directory_length"])

    def zoom_range(self, region: Region) -> list[int]:
        return [z for z in range(self.header["min_zoom"], min(self.header["max_zoom"], MAX_ZOOM) + 1)
                if region.allows_zoom(z)]

    def tile_ids(self, wanted: Ranges, after: int) -> Iterator[int]:
        """Every stored tile id in one of the ``wanted`` [first, end) ranges and above ``after``, in order;
        ``SourceError`` for a damaged directory."""
        # A valid archive stores each directory once: reading more directory bytes than it holds means that its
        # entries point at the same directories again and again.
        budget = [self.header["root_length"] + self.header["leaf_directory_length"]]
        try:
            yield from self._ids(self.root, clip(wanted, after + 1, MAX_TILE_ID), 0, budget)
        except DamagedDirectory as exc:
            raise SourceError(f"{str(self.path)!r} has a damaged directory ({exc})") from None

    def _ids(self, entries: Directory, wanted: Ranges, depth: int, budget: list[int]) -> Iterator[int]:
        """The ids of ``entries`` (and of the leaves they point to) within ``wanted``, in order, each entry's run
        cut to the ranges by arithmetic: a run of billions of ids costs no more than its tiles in the ranges."""
        for start, stop in _entry_spans(entries, wanted):
            for index in range(start, stop):
                tile_id, offset, length, run = entries.entry(index)
                if run:
                    for low, high in clip(wanted, tile_id, tile_id + run):
                        yield from range(low, high)
                    continue
                end = int(entries.tile_ids[index + 1]) if index + 1 < len(entries) else wanted[-1][1]
                inside = clip(wanted, tile_id, end)
                if not inside or depth + 1 >= MAX_DEPTH:
                    continue
                budget[0] -= length
                if budget[0] < 0:
                    raise DamagedDirectory("its entries point to more directory bytes than the file holds")
                leaf = self._decode(self.header["leaf_directory_offset"] + offset, length)  # read once: not cached
                yield from self._ids(leaf, inside, depth + 1, budget)

    def read(self, tile: Tile) -> bytes:
        if tile.z is None or tile.x is None or tile.y is None:
            raise TileUnreadable("a tile of a PMTiles archive needs coordinates")
        tile_id = zxy_to_tileid(tile.z, tile.x, tile.y)
        entries = self.root
        try:
            for _ in range(MAX_DEPTH):
                index = entries.find(tile_id)
                if index is None:
                    break
                _, offset, length, run = entries.entry(index)
                if run:
                    if length > MAX_TILE_BYTES:  # refused before it is copied out of the file
                        raise TileUnreadable(f"tile too large: {length} bytes > {MAX_TILE_BYTES}")
                    start = self.header["tile_data_offset"] + offset
                    return capped(self._inflated(self.data[start : start + length]), tile, "PMTiles")
                entries = self.directory(self.header["leaf_directory_offset"] + offset, length)
        except DamagedDirectory as exc:
            raise TileUnreadable(f"damaged PMTiles directory ({exc})") from None
        return capped(None, tile, "PMTiles")

    def _inflated(self, data: bytes) -> bytes:
        if self.compression != Compression.GZIP:
            return data
        try:
            return gunzip(data, limit=MAX_TILE_BYTES, what="tile")
        except TooLarge:
            raise TileUnreadable(f"tile too large: inflates to more than {MAX_TILE_BYTES} bytes") from None
        except Damaged as exc:
            raise TileUnreadable(str(exc)) from None


def clip(ranges: Ranges, low: int, high: int) -> Ranges:
    """``ranges`` cut to [low, high)."""
    return [(max(first, low), min(end, high)) for first, end in ranges if max(first, low) < min(end, high)]


def _entry_spans(entries: Directory, wanted: Ranges) -> Iterator[tuple[int, int]]:
    """[start, stop) index spans of the entries that may hold ids in ``wanted``, in order and apart."""
    spans: list[tuple[int, int]] = []
    for low, high in wanted:
        start, stop = entries.first_at(low), entries.end_before(high)
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(stop, spans[-1][1]))
        elif start < stop:
            spans.append((start, stop))
    return iter(spans)


@dataclass(frozen=True)
class PMTilesSource(ArchiveSource):
    kind: ClassVar[str] = "pmtiles"
    suffixes: ClassVar[tuple[str, ...]] = (".pmtiles",)

    def open_file(self, path: Path) -> PMTilesFile:
        return PMTilesFile(path)

    def info(self) -> SourceInfo:
        """The zooms and bounds its header declares (bounds None where they are not a box on the map)."""
        if self.path is None:
            return super().info()
        header = self.opened(Path(self.path)).header
        west, south, east, north = (header[f"{edge}_e7"] / 1e7 for edge in ("min_lon", "min_lat", "max_lon", "max_lat"))
        try:
            bounds: BBox | None = BBox.of([max(west, -180.0), max(south, -MAX_LAT), min(east, 180.0),
                                           min(north, MAX_LAT)])
        except TileError:
            bounds = None
        zooms = tuple(range(header["min_zoom"], min(header["max_zoom"], MAX_ZOOM) + 1))
        return SourceInfo(self.kind, self.name, self.path, bounds=bounds, zooms=zooms or None)

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
