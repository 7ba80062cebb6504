"""Tile sources: where a job's tiles are, how the producer lists them and how a worker reads each one.

A job records its source as JSON (the ``jobs.source`` column), never an open handle; ``source_from_record`` turns
that record back into a source on any host. Messages and result rows carry the source's ``name``. Every kind has
the same small interface:

- ``to_record()`` / ``from_record(record)``: the JSON the job keeps, ``{"kind": ..., "name": ..., ...}``;
- ``check_readable()``: whether the producer's host can list it again (before a resume);
- ``tiles(region, after=..., report=..., chunk_size=...)``: the producer's enumeration, in resumable chunks;
- ``local_root(settings)``: where this host has it (``TILECLASS_TILE_ROOTS``, ``TILECLASS_SOURCES``, else the
  recorded path).

Kinds: ``folder`` (``core.sources.folder``: tile files, read by path), ``mbtiles`` and ``pmtiles``
(``core.sources.archive``: one file, read by coordinates through ``reader(settings)``), ``geotiff``
(``core.sources.raster``: a georeferenced raster, cut into tiles on the workers), ``url`` (``core.sources.url``:
a tile server, read by coordinates over HTTP). ``core.sources.spec`` turns what the user typed (a folder, an
archive path, a URL template, ``@NAME``) into one of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import TileRootError
from core.sources.archive import ArchiveSource, TileAbsent, TileReader, TileUnreadable
from core.sources.folder import FolderSource
from core.sources.mbtiles import MBTilesSource
from core.sources.pmtiles import PMTilesSource
from core.sources.raster import RasterSource
from core.sources.url import UrlSource

TileSource = FolderSource | MBTilesSource | PMTilesSource | RasterSource | UrlSource
KINDS: dict[str, type[FolderSource] | type[ArchiveSource] | type[UrlSource]] = {
    source.kind: source for source in (FolderSource, MBTilesSource, PMTilesSource, RasterSource, UrlSource)}
__all__ = ["KINDS", "ArchiveSource", "FolderSource", "MBTilesSource", "PMTilesSource", "RasterSource", "TileAbsent",
           "TileReader", "TileSource", "TileUnreadable", "UrlSource", "source_from_record", "training_data"]


def source_from_record(record: dict[str, Any]) -> TileSource:
    """The source a job recorded; ``TileRootError`` for a record this version cannot read."""
    kind = record.get("kind")
    source_class = KINDS.get(str(kind))
    if source_class is None:
        raise TileRootError(f"unknown tile source kind {kind!r}: this tileclass reads {', '.join(KINDS)}")
    try:
        return source_class.from_record(record)  # type: ignore[return-value]
    except (KeyError, TypeError) as exc:
        raise TileRootError(f"the job's {kind} source record is incomplete ({exc})") from None


def training_data(folder: Path, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a training job records as its source: the ImageFolder it trains on (not a tile source), and the
    training options it was sent with, so that a lost run can be sent again as it was."""
    record: dict[str, Any] = {"kind": "imagefolder", "path": str(folder.resolve())}
    if config is not None:
        record["config"] = config
    return record
