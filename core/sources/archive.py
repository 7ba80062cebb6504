"""What MBTiles and PMTiles sources share: one file addressed by tile coordinates, named like a tile root.

A job records ``{"kind": "mbtiles", "name": "city-5be0a1c2", "path": "/data/city.mbtiles"}``. A worker finds its own
copy by name (``TILECLASS_SOURCES``, ``TILECLASS_TILE_ROOTS``), else at the recorded path; a copy that is missing or
unreadable there is the host's problem (``SourceUnavailable``, a host error), never the tiles'.

Each worker process opens an archive once and keeps it open (``ArchiveSource.reader``): the decoding threads read
tiles from it by key. An archive replaced on disk (another inode or mtime) is opened again on the next batch.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

from core.region import Region
from core.settings import Settings
from core.sources.base import (
    MAX_TILE_BYTES,
    Chunk,
    Key,
    SourceError,
    SourceOptions,
    SourceUnavailable,
    TileReader,
    TileSource,
    TileUnreadable,
    WalkReport,
)
from core.sources.roots import resolve_root, source_name_for
from core.tiles import Tile

_open_readers: dict[tuple[int, str], tuple[tuple[int, int], TileReader]] = {}
_open_lock = threading.Lock()


@dataclass(frozen=True)
class ArchiveSource(TileSource):
    """One archive file; subclasses say how to check, list and open it."""

    name: str
    path: str | None
    kind: ClassVar[str]

    @classmethod
    def at(cls, file: Path, *, settings: Settings, name: str | None = None) -> Self:
        """The source for an archive the user named, checked to be a readable archive of its kind."""
        if not file.exists():
            raise SourceError(f"{cls.kind} file {str(file)!r} does not exist")
        if not file.is_file():
            raise SourceError(f"{cls.kind} source {str(file)!r} is not a file")
        resolved = file.resolve()
        source = cls(name or source_name_for(resolved, settings), str(resolved))
        source.opened(resolved)  # the same checks a worker makes, now, in one line
        return source

    @classmethod
    def from_spec(cls, spec: str, options: SourceOptions, settings: Settings) -> Self:
        cls.refuse_options(options)
        return cls.at(Path(spec), settings=settings, name=options.name)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        path = record.get("path")
        return cls(str(record["name"]), None if path is None else str(path))

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "path": self.path}

    def check_readable(self) -> None:
        """``SourceError`` unless the recorded file is a readable archive on this host (before a resume)."""
        if self.path is None:
            raise SourceError(f"{self.kind} source {self.name!r} has no recorded file")
        self.opened(Path(self.path))

    def tiles(self, region: Region | None, *, after: Key | None = None, report: WalkReport | None = None,
              chunk_size: int = 4096) -> Iterator[Chunk]:
        """The region's tiles in the archive, in resumable chunks (see the subclass)."""
        if self.path is None:
            raise SourceError(f"{self.kind} source {self.name!r} has no recorded file to list")
        return self.list_tiles(self.opened(Path(self.path)), region or Region(), after=after,
                               chunk_size=chunk_size)

    def local_root(self, settings: Settings) -> Path:
        """This host's copy of the archive: the settings' name for it, else the path the producer recorded."""
        return resolve_root(self.name, settings, self.path)

    def reader(self, settings: Settings) -> TileReader:
        """This process's open copy of the archive on this host; ``SourceUnavailable`` when it is missing here,
        ``SourceError`` when it is not an archive of its kind."""
        return self.opened(self.local_root(settings))

    def opened(self, path: Path) -> Any:
        """The archive at ``path``, opened once per process and version of the file (its inode and mtime): the
        producer's checks, its listing and a worker's reads share one open file."""
        try:
            info = path.stat()
        except OSError as exc:
            raise SourceUnavailable(f"{self.kind} source {self.name!r}: {str(path)!r} cannot be opened on this host "
                                    f"({exc.strerror or exc.__class__.__name__})") from None
        key, version = (os.getpid(), str(path)), (info.st_ino, info.st_mtime_ns)
        with _open_lock:
            known = _open_readers.get(key)
            if known is None or known[0] != version:
                _open_readers[key] = (version, self.open_file(path))
            return _open_readers[key][1]

    def open_file(self, path: Path) -> Any:
        """The open archive (a ``TileReader``), or ``SourceError`` saying why it is not one of this kind."""
        raise NotImplementedError

    def list_tiles(self, archive: Any, region: Region, *, after: Key | None, chunk_size: int) -> Iterator[Chunk]:
        raise NotImplementedError


def capped(data: bytes | None, tile: Tile, kind: str) -> bytes:
    """``data`` when it is a tile of a usable size, else ``TileUnreadable``."""
    if data is None:
        raise TileUnreadable(f"no tile {tile} in the {kind} archive")
    if not data:
        raise TileUnreadable("empty tile data")
    if len(data) > MAX_TILE_BYTES:
        raise TileUnreadable(f"tile too large: {len(data)} bytes > {MAX_TILE_BYTES}")
    return data
