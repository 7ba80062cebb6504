"""Named tile roots, and the rule that no path ever leaves its root.

Task messages name a root and a path relative to it. Each host maps root names to its own mount points
(``TILECLASS_TILE_ROOTS``); a job also records the root's path on the producer's host, which is used when the
setting does not name the root (the one-machine case, where producer and worker see the same disk).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

from core.errors import TileRootError
from core.settings import Settings


def root_name_for(path: Path, settings: Settings) -> str:
    """The configured name of the root at ``path``, or a stable derived name (folder name + path hash)."""
    resolved = path.resolve()
    for name, configured in settings.tile_roots.items():
        if configured.resolve() == resolved:
            return name
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    stem = "".join(ch if ch.isalnum() or ch in "_.-" else "-" for ch in resolved.name) or "root"
    return f"{stem[:40]}-{digest}"


def resolve_root(name: str, settings: Settings, recorded_path: str | None = None) -> Path:
    """The local path of root ``name``: the setting first, else the path the job recorded."""
    configured = settings.tile_roots.get(name)
    if configured is not None:
        return configured
    if recorded_path is not None:
        return Path(recorded_path)
    known = ", ".join(sorted(settings.tile_roots)) or "none configured"
    raise TileRootError(f"unknown tile root {name!r}: set TILECLASS_TILE_ROOTS (known roots: {known})")


def safe_join(root: Path, relative: str) -> Path:
    """``root / relative``, refusing absolute paths, ``..`` and symlinks that lead outside the root."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or "\\" in relative or "\x00" in relative:
        raise TileRootError(f"tile path {relative!r} is not a plain path inside its root")
    candidate = root / pure
    if not is_inside(os.path.realpath(candidate), root):
        raise TileRootError(f"tile path {relative!r} leads outside its root {str(root)!r}")
    return candidate


def is_inside(real: str, root: Path) -> bool:
    """Whether the resolved path ``real`` lies in ``root`` (itself resolved here, symlinks and all)."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, real]) == real_root
