"""A folder of tile files, read with a layout (``core.layouts``, ``core.walk``); its record is
``{"kind": "folder", "name": "ortho-3fa9c2d1", "path": "/mnt/ortho", "layout": "xyz:{z}/{x}/{y}.{ext}"}``.

Workers read a folder's tiles by the path the walk found (``locate``); ``reader`` also reads one by its
coordinates, spelled through the layout (the HTTP server's imagery), never from outside the folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from core.errors import TileRootError
from core.layouts import Layout
from core.region import Region
from core.roots import resolve_root, root_name_for, safe_join
from core.settings import Settings
from core.sources.archive import TileAbsent, TileUnreadable
from core.sources.files import NO_SUCH_FILE, read_tile_file
from core.tiles import Tile
from core.walk import Chunk, Key, WalkReport, walk


@dataclass(frozen=True)
class FolderSource:
    """A folder of tile files; ``name`` is how hosts know it (``TILECLASS_TILE_ROOTS``), ``path`` where the
    producer's host found it (used by hosts whose setting does not name it)."""

    name: str
    path: str | None
    layout: Layout
    kind: ClassVar[str] = "folder"

    @classmethod
    def at(cls, folder: Path, *, layout: Layout, settings: Settings) -> FolderSource:
        """The source for a folder the user named, checked to exist."""
        if not folder.exists():
            raise TileRootError(f"tile root {str(folder)!r} does not exist")
        if not folder.is_dir():
            raise TileRootError(f"tile root {str(folder)!r} is not a directory")
        resolved = folder.resolve()
        return cls(root_name_for(resolved, settings), str(resolved), layout)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FolderSource:
        path = record.get("path")
        return cls(str(record["name"]), None if path is None else str(path), Layout.from_name(str(record["layout"])))

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "path": self.path, "layout": self.layout.name}

    def check_readable(self) -> None:
        """``TileRootError`` unless the recorded folder is a directory on this host (before walking it again)."""
        if self.path is None or not Path(self.path).is_dir():
            raise TileRootError(f"tile root {self.path!r} is not a directory on this host")

    def tiles(self, region: Region | None, *, after: Key | None = None, report: WalkReport | None = None,
              chunk_size: int = 4096) -> Iterator[Chunk]:
        """The region's tiles in the folder, in chunks of one directory (see ``core.walk``)."""
        if self.path is None:
            raise TileRootError(f"tile source {self.name!r} has no recorded folder to walk")
        return walk(Path(self.path), self.layout, region, after=after, report=report, chunk_size=chunk_size)

    def local_root(self, settings: Settings) -> Path:
        """This host's path of the folder: ``TILECLASS_TILE_ROOTS``, else the path the producer recorded."""
        return resolve_root(self.name, settings, self.path)

    def reader(self, settings: Settings) -> FolderReader:
        """Reads this host's copy of the folder by tile path or coordinates; ``TileRootError`` if it is missing."""
        root = self.local_root(settings)
        if not root.is_dir():
            raise TileRootError(f"tile root {self.name!r} is not a directory on this host ({str(root)!r})")
        return FolderReader(root, self.layout)

    @staticmethod
    def locate(root: Path, tile: Tile) -> Path:
        """The tile's file below ``root``; ``TileRootError`` for a path that would leave it."""
        if tile.path is None:
            raise TileRootError(f"tile {tile} has no path in its folder")
        return safe_join(root, tile.path)


@dataclass(frozen=True)
class FolderReader:
    """One folder's tiles by path (``tile.path``) or else by coordinates through its layout."""

    root: Path
    layout: Layout

    def read(self, tile: Tile) -> bytes:
        """The tile file's bytes; ``TileAbsent`` when the folder has no file for its coordinates, ``TileUnreadable``
        when the file cannot be read or its path would leave the folder."""
        if tile.path is not None:
            return self._read(tile.path)
        if tile.z is None or tile.x is None or tile.y is None:
            raise TileUnreadable("a tile without coordinates or path")
        for relative in self.layout.paths_of(tile.z, tile.x, tile.y):
            try:
                return self._read(relative)
            except TileAbsent:
                continue
        raise TileAbsent(f"no tile file for {tile} in the folder")

    def _read(self, relative: str) -> bytes:
        try:
            path = safe_join(self.root, relative)
        except TileRootError as exc:
            raise TileUnreadable(str(exc)) from None
        try:
            return read_tile_file(path, root=self.root)
        except TileUnreadable as exc:
            if exc.reason == NO_SUCH_FILE:
                raise TileAbsent(exc.reason) from None
            raise
