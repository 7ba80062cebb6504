"""Named tile roots and sources, and the rule that no path ever leaves its root.

Task messages name a source and, for a folder, a path relative to it. Each host maps names to its own mount points
and files (``TILECLASS_TILE_ROOTS``, and ``TILECLASS_SOURCES``, which extends it to archives); a job also records the
source's path on the producer's host, which is used when neither setting names it (the one-machine case, where
producer and worker see the same disk).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

from core.settings import Settings
from core.sources.base import SourceError, SourceUnavailable


def source_name_for(path: Path, settings: Settings) -> str:
    """The configured name of the root or source at ``path``, or a stable derived name (its name + path hash)."""
    resolved = path.resolve()
    for name, configured in named_paths(settings).items():
        if configured.resolve() == resolved:
            return name
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    stem = "".join(ch if ch.isalnum() or ch in "_.-" else "-" for ch in resolved.name) or "root"
    return f"{stem[:40]}-{digest}"


def named_paths(settings: Settings) -> dict[str, Path]:
    """Every name this host knows a tile folder or archive by: ``TILECLASS_TILE_ROOTS`` and ``TILECLASS_SOURCES``."""
    return {**{name: Path(value) for name, value in settings.sources.named.items() if not is_url(value)},
            **settings.sources.roots}


def is_url(value: str) -> bool:
    """Whether a named source is a tile server's URL template rather than a path."""
    return value.startswith(("http://", "https://"))


def resolve_root(name: str, settings: Settings, recorded_path: str | None = None) -> Path:
    """The local path of source ``name``: the settings first, else the path the job recorded; ``SourceUnavailable``
    when this host knows neither."""
    configured = named_paths(settings).get(name)
    if configured is not None:
        return configured
    if recorded_path is not None:
        return Path(recorded_path)
    known = ", ".join(sorted(named_paths(settings))) or "none configured"
    raise SourceUnavailable(f"unknown tile source {name!r}: set TILECLASS_TILE_ROOTS or TILECLASS_SOURCES (known: "
                            f"{known})")


def safe_join(root: Path, relative: str) -> Path:
    """``root / relative``, refusing absolute paths, ``..`` and symlinks that lead outside the root."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or "\\" in relative or "\x00" in relative:
        raise SourceError(f"tile path {relative!r} is not a plain path inside its root")
    candidate = root / pure
    if not is_inside(os.path.realpath(candidate), root):
        raise SourceError(f"tile path {relative!r} leads outside its root {str(root)!r}")
    return candidate


def is_inside(real: str, root: Path) -> bool:
    """Whether the resolved path ``real`` lies in ``root`` (itself resolved here, symlinks and all)."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, real]) == real_root
