"""Reading one tile file below a folder source's root, checked on the opened file rather than on its path.

A folder's reader (``core.sources.folder.FolderReader``: the workers, the HTTP server's imagery, the map's render,
``dataset export``) reads through it: a tile path or a folder swapped for a symlink between the path check
(``core.sources.roots.safe_join``) and the read is refused, never read from outside the root.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from core.sources.base import MAX_TILE_BYTES, TileUnreadable
from core.sources.roots import is_inside

NO_SUCH_FILE = "no such file"


def read_tile_file(path: Path, *, root: Path | None = None, max_bytes: int = MAX_TILE_BYTES) -> bytes:
    """The file's bytes, or ``TileUnreadable`` naming why it cannot be read.

    Everything is checked on the opened file, not on the path before it: ``O_NONBLOCK`` so that a FIFO named like
    a tile cannot block the open, ``fstat`` for its type and size, and (with ``root``) the real path of the open
    descriptor, so that a folder swapped for a symlink after ``core.sources.roots.safe_join`` checked the path is
    refused instead of read from outside the root.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TileUnreadable(NO_SUCH_FILE) from None
    except PermissionError:
        raise TileUnreadable("permission denied") from None
    except OSError as exc:
        raise TileUnreadable(f"unreadable file ({exc.strerror or exc.__class__.__name__})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # a FIFO or a device could block or read without end
        os.close(fd)
        raise TileUnreadable("is a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if root is not None and not is_inside(_opened_path(fd, path), root):
            raise TileUnreadable("path leads outside its root (a folder on it was replaced by a symlink)")
        if info.st_size > max_bytes:
            raise TileUnreadable(f"file too large: {info.st_size} bytes > {max_bytes}")
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise TileUnreadable(f"unreadable file ({exc.strerror or exc.__class__.__name__})") from None
    if len(data) > max_bytes:  # it grew after fstat
        raise TileUnreadable(f"file too large: more than {max_bytes} bytes")
    return data


def _opened_path(fd: int, path: Path) -> str:
    """The real path of an open descriptor (Linux: /proc/self/fd), else of the path it was opened by."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


