"""What the user typed as SOURCE (``tileclass enqueue SOURCE``) as a tile source.

- ``@NAME``: the folder or archive this host names NAME (``TILECLASS_SOURCES``, then ``TILECLASS_TILE_ROOTS``);
- a path ending in ``.mbtiles`` or ``.pmtiles``: that archive;
- any other path: a folder of tile files, read with ``layout``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.errors import TileRootError
from core.layouts import Layout
from core.roots import named_paths
from core.settings import Settings
from core.sources import FolderSource, MBTilesSource, PMTilesSource, TileSource

ARCHIVES = {source.suffix: source for source in (MBTilesSource, PMTilesSource)}
KNOWN = "a folder, a .mbtiles or .pmtiles file, or @NAME"


def source_for(spec: str, *, layout: Layout, settings: Settings) -> TileSource:
    """The source ``spec`` names; ``TileRootError`` in one line saying what is wrong and what is accepted."""
    if spec.startswith("@"):
        name = spec[1:]
        known = named_paths(settings)
        if name not in known:
            names = ", ".join(f"@{n}" for n in sorted(known)) or "none: set TILECLASS_SOURCES"
            raise TileRootError(f"unknown source @{name}: this host names {names}")
        return replace(_at(known[name], layout, settings), name=name)
    if spec.startswith(("http://", "https://")):
        raise TileRootError(f"{spec.split('?')[0].split('{')[0]}…: tile server URLs are not read by this version; "
                            f"SOURCE is {KNOWN}")
    return _at(Path(spec), layout, settings)


def _at(path: Path, layout: Layout, settings: Settings) -> TileSource:
    archive = ARCHIVES.get(path.suffix.lower())
    if archive is not None:
        return archive.at(path, settings=settings)
    if path.is_file():
        raise TileRootError(f"{str(path)!r} is a file of a kind tileclass does not read: SOURCE is {KNOWN}")
    return FolderSource.at(path, layout=layout, settings=settings)
