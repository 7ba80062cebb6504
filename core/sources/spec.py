"""What the user typed as SOURCE (``tileclass enqueue SOURCE``) as a tile source.

- ``@NAME``: the folder, archive or tile server this host names NAME (``TILECLASS_SOURCES``, then
  ``TILECLASS_TILE_ROOTS``);
- an ``http://`` or ``https://`` URL template: a tile server (``core.sources.url_template``);
- a path ending in ``.mbtiles`` or ``.pmtiles``: that archive; ``.tif`` or ``.tiff``: a GeoTIFF or COG raster;
- any other path: a folder of tile files, read with ``layout``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.errors import TileRootError
from core.layouts import Layout
from core.roots import is_url, named_paths
from core.settings import Settings
from core.sources import FolderSource, MBTilesSource, PMTilesSource, RasterSource, TileSource, UrlSource

ARCHIVES: dict[str, type[MBTilesSource] | type[PMTilesSource] | type[RasterSource]] = {
    ".mbtiles": MBTilesSource, ".pmtiles": PMTilesSource, ".tif": RasterSource, ".tiff": RasterSource}
KNOWN = "a folder, a .mbtiles, .pmtiles, .tif or .tiff file, an http(s):// URL template, or @NAME"


def source_for(spec: str, *, layout: Layout, settings: Settings, subdomains: str = "",
               max_rate: float = 0.0, redirect_hosts: tuple[str, ...] = ()) -> TileSource:
    """The source ``spec`` names; ``TileRootError`` in one line saying what is wrong and what is accepted."""
    name = None
    if spec.startswith("@"):
        name = spec[1:]
        known = {**named_paths(settings), **{n: v for n, v in settings.sources.items() if is_url(v)}}
        if name not in known:
            names = ", ".join(f"@{n}" for n in sorted(known)) or "none: set TILECLASS_SOURCES"
            raise TileRootError(f"unknown source @{name}: this host names {names}")
        spec = str(known[name])
    if is_url(spec):
        return UrlSource.at(spec, settings=settings, subdomains=subdomains, max_rate=max_rate, name=name,
                            redirect_hosts=redirect_hosts)
    if subdomains or max_rate or redirect_hosts:
        raise TileRootError("--subdomains, --max-rate and --allow-redirect-host apply to tile server URLs")
    source = _at(Path(spec), layout, settings)
    return replace(source, name=name) if name is not None else source


def _at(path: Path, layout: Layout, settings: Settings) -> TileSource:
    archive = ARCHIVES.get(path.suffix.lower())
    if archive is not None:
        return archive.at(path, settings=settings)
    if path.is_file():
        raise TileRootError(f"{str(path)!r} is a file of a kind tileclass does not read: SOURCE is {KNOWN}")
    return FolderSource.at(path, layout=layout, settings=settings)
