"""What the user typed as SOURCE (``tileclass enqueue SOURCE``) as a tile source.

- ``@NAME``: the folder, archive or tile server this host names NAME (``TILECLASS_SOURCES``, then
  ``TILECLASS_TILE_ROOTS``);
- else the first kind of ``core.sources.KINDS`` that claims it (``TileSource.claims``): an ``http://`` or
  ``https://`` URL template is a tile server (``core.sources.url_template``), a path ending in ``.mbtiles`` or
  ``.pmtiles`` that archive, ``.tif`` or ``.tiff`` a GeoTIFF or COG raster;
- any other path that is not a file: a folder of tile files (the ``fallback`` kind), read with ``layout``.
"""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from core.sources import kinds
from core.sources.base import SourceError, SourceOptions, TileSource
from core.sources.layouts import Layout
from core.sources.roots import is_url, named_paths


def source_for(spec: str, *, settings: Settings, layout: Layout | None = None, subdomains: str = "",
               max_rate: float = 0.0, redirect_hosts: tuple[str, ...] = ()) -> TileSource:
    """The source ``spec`` names; ``SourceError`` in one line saying what is wrong and what is accepted. ``layout``
    (``--layout``/``--scheme``; None: not given) and the URL options apply to the kinds that take them."""
    options = SourceOptions(layout=layout, subdomains=subdomains, max_rate=max_rate, redirect_hosts=redirect_hosts)
    if spec.startswith("@"):
        name = spec[1:]
        known = {**named_paths(settings), **{n: v for n, v in settings.sources.named.items() if is_url(v)}}
        if name not in known:
            names = ", ".join(f"@{n}" for n in sorted(known)) or "none: set TILECLASS_SOURCES"
            raise SourceError(f"unknown source @{name}: this host names {names}")
        spec, options = str(known[name]), SourceOptions(layout, subdomains, max_rate, redirect_hosts, name)
    every = kinds()
    claimed = next((kind for kind in every if kind.claims(spec)), None)
    if claimed is None:
        if Path(spec).is_file():
            raise SourceError(f"{str(Path(spec))!r} is a file of a kind tileclass does not read: SOURCE is "
                              f"{known_forms(every)}")
        claimed = next(kind for kind in every if kind.fallback)
    return claimed.from_spec(spec, options, settings)


def known_forms(every: list[type[TileSource]]) -> str:
    """What SOURCE may be, in the order of ``KINDS``; the file kinds' suffixes together, where the first of them
    comes."""
    forms: list[str] = []
    suffixes = [suffix for kind in every for suffix in kind.suffixes]
    for kind in every:
        if kind.suffixes and suffixes:
            forms.append(f"a {', '.join(suffixes[:-1])} or {suffixes[-1]} file" if len(suffixes) > 1
                         else f"a {suffixes[0]} file")
            suffixes = []
        elif kind.spelled:
            forms.append(kind.spelled)
    return ", ".join([*forms, "or @NAME"])
