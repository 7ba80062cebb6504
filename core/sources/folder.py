"""A folder of tile files, read with a layout (``core.sources.layouts``, ``core.sources.walk``); its record is
``{"kind": "folder", "name": "ortho-3fa9c2d1", "path": "/mnt/ortho", "layout": "xyz:{z}/{x}/{y}.{ext}"}``.

``reader`` reads a tile by the path the walk found (the workers, the map's render) or by its coordinates, spelled
through the layout (the HTTP server's imagery), never from outside the folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from core.errors import TileError
from core.region import Region
from core.settings import Settings
from core.sources.base import (
    Chunk,
    EnqueuePlan,
    Key,
    SourceError,
    SourceInfo,
    SourceOptions,
    SourceUnavailable,
    TileAbsent,
    TileSource,
    TileUnreadable,
    WalkReport,
)
from core.sources.files import NO_SUCH_FILE, read_tile_file
from core.sources.layouts import Layout
from core.sources.roots import resolve_root, safe_join, source_name_for
from core.sources.walk import walk
from core.tiles import Tile


@dataclass(frozen=True)
class FolderSource(TileSource):
    """A folder of tile files; ``name`` is how hosts know it (``TILECLASS_TILE_ROOTS``), ``path`` where the
    producer's host found it (used by hosts whose setting does not name it)."""

    name: str
    path: str | None
    layout: Layout
    kind: ClassVar[str] = "folder"
    spelled: ClassVar[str] = "a folder"
    takes: ClassVar[frozenset[str]] = frozenset({"layout"})
    fallback: ClassVar[bool] = True

    @classmethod
    def at(cls, folder: Path, *, layout: Layout, settings: Settings, name: str | None = None) -> FolderSource:
        """The source for a folder the user named, checked to exist."""
        if not folder.exists():
            raise SourceError(f"tile root {str(folder)!r} does not exist")
        if not folder.is_dir():
            raise SourceError(f"tile root {str(folder)!r} is not a directory")
        resolved = folder.resolve()
        return cls(name or source_name_for(resolved, settings), str(resolved), layout)

    @classmethod
    def claims(cls, spec: str) -> bool:
        return False  # the fallback: a path that no other kind claims and that is not a file

    @classmethod
    def from_spec(cls, spec: str, options: SourceOptions, settings: Settings) -> FolderSource:
        cls.refuse_options(options)
        return cls.at(Path(spec), layout=options.layout or Layout.parse(), settings=settings, name=options.name)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FolderSource:
        path = record.get("path")
        return cls(str(record["name"]), None if path is None else str(path), Layout.from_name(str(record["layout"])))

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "path": self.path, "layout": self.layout.name}

    def check_readable(self) -> None:
        """``SourceUnavailable`` unless the recorded folder is a directory on this host (before walking it
        again)."""
        if self.path is None or not Path(self.path).is_dir():
            raise SourceUnavailable(f"tile root {self.path!r} is not a directory on this host")

    def tiles(self, region: Region | None, *, after: Key | None = None, report: WalkReport | None = None,
              chunk_size: int = 4096) -> Iterator[Chunk]:
        """The region's tiles in the folder, in chunks of one directory (see ``core.sources.walk``)."""
        if self.path is None:
            raise SourceError(f"tile source {self.name!r} has no recorded folder to walk")
        return walk(Path(self.path), self.layout, region, after=after, report=report, chunk_size=chunk_size)

    def for_enqueue(self, region: Region | None, *, settings: Settings, probes: int) -> EnqueuePlan:
        """A plain folder's tiles have no coordinates: no region can select them."""
        if self.layout.is_plain and region is not None:
            raise TileError("--zoom, --bbox and --geojson need a layout with coordinates; 'plain' tiles have none")
        return super().for_enqueue(region, settings=settings, probes=probes)

    def nothing_found(self, region: Region | None) -> str:
        """Says which names were looked for, and where the tree's root is when the folder is a zoom folder of
        one."""
        if self.layout.is_plain:
            return super().nothing_found(region)
        where = f"{self.path or self.name}{' within --zoom/--bbox/--geojson' if region is not None else ''}"
        template = self.layout.template
        above = self.layout.tree_root_above(Path(self.path)) if self.path else None
        if above is not None:
            root, coords = above
            folder = ", ".join(f"{'zoom' if name == 'z' else name} {value}" for name, value in coords.items())
            return (f"no tiles found in {self.path}: it looks like the folder of {folder} in a '{template}' tree, "
                    f"not the tree's root; give the root instead: tileclass enqueue {root} ...")
        return (f"no tiles named like '{template}' ({self.layout.scheme}) found in {where}: nothing enqueued; "
                "--layout names another layout, e.g. '{z}-{x}-{y}.jpg' or 'plain'")

    def info(self) -> SourceInfo:
        return SourceInfo(self.kind, self.name, self.path, layout=self.layout.name)

    def local_root(self, settings: Settings) -> Path:
        """This host's path of the folder: ``TILECLASS_TILE_ROOTS``, else the path the producer recorded."""
        return resolve_root(self.name, settings, self.path)

    def reader(self, settings: Settings) -> FolderReader:
        """Reads this host's copy of the folder by tile path or coordinates; ``SourceUnavailable`` when it is
        missing, unreadable or empty here (an unmounted mount point: tiles were listed from it)."""
        root = self.local_root(settings)
        try:
            with os.scandir(root) as entries:
                if next(entries, None) is not None:
                    return FolderReader(root, self.layout)
            problem = "is empty (not mounted?)"
        except OSError as exc:
            problem = f"cannot be read ({exc.strerror or exc.__class__.__name__})"
        configured = settings.sources.roots.values()
        broken = bool(configured) and not any(path.is_dir() for path in configured)
        raise SourceUnavailable(f"tile root {self.name!r} at {str(root)!r} {problem} on this host"
                                + (": and no configured tile root is a folder here" if broken else ""), broken=broken)


@dataclass(frozen=True)
class FolderReader:
    """One folder's tiles by path (``tile.path``: the file the walk found) or else by coordinates through its
    layout (the HTTP server's imagery), never from outside the folder."""

    root: Path
    layout: Layout

    def read(self, tile: Tile) -> bytes:
        """The tile file's bytes. ``TileUnreadable`` when the file cannot be read or its path would leave the
        folder (a file the walk found and that is gone fails too); by coordinates, ``TileAbsent`` when the folder
        has no file for them."""
        if tile.path is not None:
            return self._read(tile.path)
        if tile.z is None or tile.x is None or tile.y is None:
            raise TileUnreadable("a tile without coordinates or path")
        for relative in self.layout.paths_of(tile.z, tile.x, tile.y):
            try:
                return self._read(relative)
            except TileUnreadable as exc:
                if exc.reason != NO_SUCH_FILE:
                    raise
        raise TileAbsent(f"no tile file for {tile} in the folder")

    def _read(self, relative: str) -> bytes:
        """The file ``relative`` below the root, checked on the opened file (``core.sources.files``)."""
        try:
            path = safe_join(self.root, relative)
        except SourceError as exc:
            raise TileUnreadable(str(exc)) from None
        return read_tile_file(path, root=self.root)
