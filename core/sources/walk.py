"""Stream the tiles of a tree, listing only the directories a region needs.

``walk`` is a generator of ``Chunk``s (at most ``chunk_size`` tiles each) read with ``os.scandir``; memory holds
one directory listing's worth of names at the directory levels and one chunk of tiles at the file level, never
the tree. Directory levels are visited in sorted order (numbers sort as numbers), so every leaf directory has a
``key`` that grows along the walk; ``walk(after=key)`` resumes after that directory. Files inside one directory
come in the file system's order.

Pruning: a directory that fixes ``z`` outside the region's zooms, or ``x`` outside the region's columns, is never
opened; file names are parsed and filtered by coordinates before anything else is looked at.

What is skipped, with its reason in the ``WalkReport``: coordinates out of range for their zoom, files that are not
regular (FIFOs, sockets), directories named like a tile, broken symlinks and symlinks leading out of the root, and
unreadable directories. Directory symlinks are never followed, so a symlink loop cannot trap the walk; a symlink to
a file is resolved (only symlinks are, so the common case costs no ``stat``) and kept only when its target is a
regular file inside the root. In a ``plain`` layout, names starting with ``.`` are ignored.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.choices import TILE_EXTENSIONS
from core.region import Region
from core.sources.base import Chunk, Key, SourceUnavailable, WalkReport
from core.sources.layouts import Layout, Level
from core.tiles import Tile, fits, flip_row

OUT_OF_RANGE = "coordinates out of range for their zoom"
NOT_REGULAR = "not a regular file"
DIR_LIKE_TILE = "directory named like a tile"
BROKEN_LINK = "broken symlink"
ESCAPING_LINK = "symlink leading outside the root"
DIR_LINK = "directory symlink (not followed)"
UNREADABLE = "unreadable directory"
BAD_NAME = "name not usable as a tile path"

_scandir = os.scandir  # one name to look up, so that tests can count the directories a walk opens


def walk(root: Path, layout: Layout, region: Region | None = None, *, after: Key | None = None,
         report: WalkReport | None = None, chunk_size: int = 4096) -> Iterator[Chunk]:
    """The tiles under ``root`` that ``layout`` names and ``region`` contains, in chunks; see the module docs."""
    real_root = os.path.realpath(root)
    if not os.path.isdir(real_root):
        raise SourceUnavailable(f"tile root {str(root)!r} is not a directory")
    walker = _Walker(real_root, layout, region or Region(), report or WalkReport(), chunk_size, after)
    if layout.is_plain:
        return walker.plain(real_root, "", ())
    return walker.levels(real_root, "", 0, {}, ())


def _is_prefix(prefix: Key, key: Key) -> bool:
    return key[: len(prefix)] == prefix


class _Walker:
    def __init__(self, real_root: str, layout: Layout, region: Region, report: WalkReport, chunk_size: int,
                 after: Key | None) -> None:
        self.root, self.layout, self.region, self.report = real_root, layout, region, report
        self.chunk_size, self.after = chunk_size, after
        self.root_prefix = real_root.rstrip(os.sep) + os.sep
        self.tms = layout.scheme == "tms"

    # -- resume -------------------------------------------------------------------------------------------
    def _done(self, key: Key) -> bool:
        """Every directory under ``key`` comes before the cursor: skip the whole subtree."""
        return self.after is not None and key < self.after and not _is_prefix(key, self.after)

    def _files_done(self, key: Key) -> bool:
        """The files of directory ``key`` itself were finished before the cursor."""
        return self.after is not None and key <= self.after

    # -- listing ------------------------------------------------------------------------------------------
    def _entries(self, path: str, rel: str) -> Iterator[os.DirEntry[str]]:
        try:
            with _scandir(path) as entries:
                yield from entries
        except (PermissionError, FileNotFoundError, NotADirectoryError) as exc:
            if path == self.root:
                raise SourceUnavailable(f"cannot list tile root {path!r}: {exc.strerror}") from None
            self.report.note(UNREADABLE, rel or ".")

    def _irregular(self, entry: os.DirEntry[str]) -> str | None:
        """Why a tile-named entry that is not a plain regular file cannot be a tile (None: a good file symlink)."""
        if entry.is_symlink():
            real = os.path.realpath(entry.path)
            if not real.startswith(self.root_prefix):
                return ESCAPING_LINK
            try:
                mode = os.stat(real).st_mode
            except OSError:  # dangling, or a loop of links
                return BROKEN_LINK
            return None if stat.S_ISREG(mode) else NOT_REGULAR
        if entry.is_dir(follow_symlinks=False):
            return DIR_LIKE_TILE
        return None if entry.is_file(follow_symlinks=False) else NOT_REGULAR

    # -- template layouts ---------------------------------------------------------------------------------
    def levels(self, path: str, rel: str, depth: int, known: dict[str, int], key: Key) -> Iterator[Chunk]:
        level = self.layout.levels[depth]
        if depth == len(self.layout.levels) - 1:
            if not self._files_done(key):
                yield from self.files(path, rel, level, known, key)
            return
        children: list[tuple[Any, str, dict[str, int]]] = []
        for entry in self._entries(path, rel):
            values = level.match(entry.name)
            if values is None:
                self.report.ignored_names += 1
                continue
            if not entry.is_dir(follow_symlinks=False):
                if entry.is_symlink():
                    self.report.note(DIR_LINK, rel + entry.name)
                else:
                    self.report.ignored_names += 1
                continue
            coords = known | dict(zip(level.fields, values, strict=True))
            if self._wanted_dir(coords, rel + entry.name):
                sort_key: Any = values[0] if len(values) == 1 else (values or entry.name)
                children.append((sort_key, entry.name, coords))
        children.sort()
        for sort_key, name, coords in children:
            child = (*key, sort_key)
            if not self._done(child):
                yield from self.levels(os.path.join(path, name), f"{rel}{name}/", depth + 1, coords, child)

    def _wanted_dir(self, coords: dict[str, int], rel: str) -> bool:
        z, x = coords.get("z"), coords.get("x")
        if z is not None:
            if not fits(z, x or 0, 0):
                self.report.note(OUT_OF_RANGE, rel)
                return False
            if not self.region.allows_zoom(z):
                return False
            if x is not None:
                columns = self.region.columns(z)
                if columns is not None and not columns[0] <= x <= columns[1]:
                    return False
        return True

    def files(self, path: str, rel: str, level: Level, known: dict[str, int], key: Key) -> Iterator[Chunk]:
        if level.fields == ("y",) and "z" in known and "x" in known:
            yield from self._column(path, rel, level, known["z"], known["x"], key)
            return
        chunk = _ChunkBuilder(key, None, self.chunk_size)
        for entry in self._entries(path, rel):
            values = level.match(entry.name)
            if values is None:
                self.report.ignored_names += 1
                continue
            coords = known | dict(zip(level.fields, values, strict=True))
            z, x, y = coords["z"], coords["x"], coords["y"]
            if not fits(z, x, y):
                self.report.note(OUT_OF_RANGE, rel + entry.name)
                continue
            if self.tms:
                y = flip_row(z, y)
            if not (self.region.contains(z, x, y) and self._usable(entry, rel)):
                continue
            if (full := chunk.add(Tile(z, x, y, rel + entry.name))) is not None:
                yield full
        yield chunk.final()

    def _column(self, path: str, rel: str, level: Level, z: int, x: int, key: Key) -> Iterator[Chunk]:
        """The hot loop: one x directory of an XYZ/TMS tree, its files named ``{y}.<ext>``."""
        ranges = self.region.rows(z, x) if self.region.allows_zoom(z) else ()
        low, high = (ranges[0] if ranges and len(ranges) == 1 else (0, (1 << z) - 1))
        many = ranges is not None and len(ranges) > 1
        chunk = _ChunkBuilder(key, (z, x), self.chunk_size)
        if ranges == ():
            yield chunk.final()
            return
        match, tms, size, new = level.pattern.fullmatch, self.tms, self.chunk_size, tuple.__new__
        tiles = chunk.tiles
        for entry in self._entries(path, rel):
            name = entry.name
            found = match(name)
            if found is None:
                self.report.ignored_names += 1
                continue
            y = int(found.group(1))
            if tms:
                y = flip_row(z, y)
            if not low <= y <= high or (many and not any(lo <= y <= hi for lo, hi in ranges or ())):
                if not fits(z, x, y):  # only a row outside the grid can be outside every range of the region
                    self.report.note(OUT_OF_RANGE, rel + name)
                continue
            if not (entry.is_file(follow_symlinks=False) or self._usable(entry, rel)):
                continue
            tiles.append(new(Tile, (z, x, y, rel + name)))  # Tile(...) without the per-call argument parsing
            if len(tiles) >= size:
                yield chunk.take()
                tiles = chunk.tiles
        yield chunk.final()

    def _usable(self, entry: os.DirEntry[str], rel: str) -> bool:
        """A tile-named entry is a tile when it is a regular file (or a good file symlink); else noted, with why."""
        if entry.is_file(follow_symlinks=False):
            return True
        reason = self._irregular(entry)
        if reason is not None:
            self.report.note(reason, rel + entry.name)
        return reason is None

    # -- plain folders ------------------------------------------------------------------------------------
    def plain(self, path: str, rel: str, key: Key) -> Iterator[Chunk]:
        files_done = self._files_done(key)
        subdirs: list[str] = []
        chunk = _ChunkBuilder(key, None, self.chunk_size)
        for entry in self._entries(path, rel):
            name = entry.name
            if name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(name)
                continue
            if files_done:
                continue
            if not name.lower().endswith(TILE_EXTENSIONS):
                self.report.ignored_names += 1
                continue
            if "\\" in name:
                self.report.note(BAD_NAME, rel + name)
                continue
            if not self._usable(entry, rel):
                continue
            if (full := chunk.add(Tile(None, None, None, rel + name))) is not None:
                yield full
        if not files_done:
            yield chunk.final()
        for name in sorted(subdirs):
            child = (*key, name)
            if not self._done(child):
                yield from self.plain(os.path.join(path, name), f"{rel}{name}/", child)


class _ChunkBuilder:
    """Collects one directory's tiles into chunks of at most ``size``."""

    def __init__(self, key: Key, column: tuple[int, int] | None, size: int) -> None:
        self.key, self.column, self.size = key, column, size
        self.tiles: list[Tile] = []

    def add(self, tile: Tile) -> Chunk | None:
        """Take ``tile``; returns the chunk it filled, if it filled one."""
        self.tiles.append(tile)
        return self.take() if len(self.tiles) >= self.size else None

    def take(self) -> Chunk:
        """The tiles collected so far, as a chunk that is not the directory's last; collecting starts again."""
        full, self.tiles = Chunk(self.key, self.tiles, self.column, False), []
        return full

    def final(self) -> Chunk:
        """The directory's last chunk (possibly empty: it still marks the directory done)."""
        return Chunk(self.key, self.tiles, self.column, True)
