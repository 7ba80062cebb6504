"""Tile sources: where a job's tiles are, how the producer lists them and how a worker reads each one.

A job records its source as JSON (the ``jobs.source`` column), never an open handle; ``source_from_record`` turns
that record back into a source on any host. Messages and result rows carry the source's ``name``. Every kind keeps
the contract of ``core.sources.base.TileSource`` (listing, reading, its enqueue rules, what it says of itself), in one
module of its own, found through ``KINDS``:

- ``folder`` (``core.sources.folder``: tile files below a root, named by a layout, ``core.sources.layouts`` and
  ``core.sources.walk``), read by path;
- ``mbtiles`` and ``pmtiles`` (one archive file, ``core.sources.archive``), read by coordinates;
- ``geotiff`` (``core.sources.raster``: a georeferenced raster, cut into tiles on the workers);
- ``url`` (``core.sources.url``: a tile server, read by coordinates over HTTP).

``core.sources.spec`` turns what the user typed (a folder, an archive path, a URL template, ``@NAME``) into one of
them; ``core.sources.roots`` maps a source's name to this host's path of it. A new kind is one module and one line
in ``KINDS``.

This package loads lazily: importing it, ``core.sources.roots`` or ``core.sources.base`` loads no kind, so neither
httpx, pmtiles nor the raster stack (the names below are imported on first use).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.sources.base import SourceError, TileSource

if TYPE_CHECKING:
    from core.sources.archive import ArchiveSource
    from core.sources.base import SourceDown, SourceUnavailable, TileAbsent, TileReader, TileUnreadable
    from core.sources.folder import FolderSource
    from core.sources.mbtiles import MBTilesSource
    from core.sources.pmtiles import PMTilesSource
    from core.sources.raster import RasterSource
    from core.sources.url import UrlSource

# Every kind this tileclass reads: the record's "kind" -> "module:class" (a subclass of TileSource).
KINDS: dict[str, str] = {
    "folder": "core.sources.folder:FolderSource",
    "mbtiles": "core.sources.mbtiles:MBTilesSource",
    "pmtiles": "core.sources.pmtiles:PMTilesSource",
    "geotiff": "core.sources.raster:RasterSource",
    "url": "core.sources.url:UrlSource",
}
_LAZY = {"ArchiveSource": "core.sources.archive", "FolderSource": "core.sources.folder",
         "MBTilesSource": "core.sources.mbtiles", "PMTilesSource": "core.sources.pmtiles",
         "RasterSource": "core.sources.raster", "UrlSource": "core.sources.url", "SourceDown": "core.sources.base",
         "SourceUnavailable": "core.sources.base", "TileAbsent": "core.sources.base",
         "TileReader": "core.sources.base", "TileUnreadable": "core.sources.base"}
__all__ = ["KINDS", "ArchiveSource", "FolderSource", "MBTilesSource", "PMTilesSource", "RasterSource", "SourceDown",
           "SourceError", "SourceUnavailable", "TileAbsent", "TileReader", "TileSource", "TileUnreadable",
           "UrlSource", "kinds", "source_class", "source_from_record", "training_data"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def source_class(kind: str) -> type[TileSource]:
    """The class of a kind in ``KINDS`` (its module imported now); ``SourceError`` for a kind it does not name."""
    where = KINDS.get(kind)
    if where is None:
        raise SourceError(f"unknown tile source kind {kind!r}: this tileclass reads {', '.join(KINDS)}")
    module, _, name = where.partition(":")
    found = getattr(importlib.import_module(module), name)
    if not (isinstance(found, type) and issubclass(found, TileSource)):
        raise TypeError(f"KINDS[{kind!r}] names {where}, which is not a TileSource")
    return found


def kinds() -> list[type[TileSource]]:
    """Every kind's class, in the order of ``KINDS`` (all of them imported)."""
    return [source_class(kind) for kind in KINDS]


def source_from_record(record: dict[str, Any]) -> TileSource:
    """The source a job recorded; ``SourceError`` for a record this version cannot read."""
    kind = record.get("kind")
    source = source_class(str(kind))
    try:
        return source.from_record(record)
    except (KeyError, TypeError) as exc:
        raise SourceError(f"the job's {kind} source record is incomplete ({exc})") from None


def training_data(folder: Path, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a training job records as its source: the ImageFolder it trains on (not a tile source), and the
    training options it was sent with, so that a lost run can be sent again as it was."""
    record: dict[str, Any] = {"kind": "imagefolder", "path": str(folder.resolve())}
    if config is not None:
        record["config"] = config
    return record
