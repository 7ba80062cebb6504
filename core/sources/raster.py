"""GeoTIFF and Cloud-Optimized GeoTIFF rasters in any CRS, cut into 256 px Web Mercator tiles by rio-tiler's
``Reader`` (the ``raster`` extra: rasterio with its GDAL; a host without it gets a one-line error naming the extra).

The producer enumerates the cover of the raster's footprint (in WGS84) intersected with the region; without
``--zoom`` it takes the zoom closest to the raster's resolution (``default_zoom``, which the CLI prints). Each
worker thread opens the raster once (a rasterio dataset is not safe to share between threads) and cuts its tiles:
a tile is warped from the source, nodata and alpha becoming transparent (an uncompressed RGBA TIFF in memory, so
the decoder counts them out of the tile's coverage like any transparent pixel: ``model.images``); a tile with no
valid pixel at all is empty. Bands: the first three as RGB (one band as grey); data that is not 8-bit is scaled
from the raster's own range, read within a bound (``_value_range``: through the overviews, else a sample of its
blocks), never by reading the whole raster.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from core.bbox import BBox
from core.region import Region
from core.settings import Settings
from core.sources.archive import ArchiveSource
from core.sources.base import (
    Chunk,
    EnqueuePlan,
    Key,
    SourceError,
    SourceInfo,
    SourceUnavailable,
    TileAbsent,
    TileUnreadable,
)
from core.sources.cover import cover
from core.tiles import MAX_LAT, MAX_ZOOM, Tile

TILE_SIZE = 256
PREVIEW_PIXELS = 4096 * 4096  # the most source pixels a reduced read of the whole raster may go through
SAMPLE_GRID = 16  # else the value range comes from SAMPLE_GRID x SAMPLE_GRID windows of one block each
SAMPLE_SIDE = 256  # and at most this many pixels a side (a strip of a striped TIFF is one block too)
log = logging.getLogger(__name__)
# rio-tiler warns on every open of a raster without overviews; RasterFile says it once, where it is opened first.
NO_OVERVIEWS = "The dataset has no Overviews"


def _rio_tiler() -> Any:
    """rio-tiler's ``io`` module, its warning about overviews silenced when a raster is opened (not when this module
    is imported); ``SourceUnavailable`` on a host without the ``raster`` extra."""
    try:
        from rio_tiler import io
    except ImportError:
        raise SourceUnavailable("reading GeoTIFF rasters needs the 'raster' extra: pip install "
                                "'tileclass[raster]'") from None
    warnings.filterwarnings("ignore", message=NO_OVERVIEWS)  # the same filter again only moves it to the front
    return io


class RasterFile:
    """One raster: its footprint and zoom, checked at open; per thread a rio-tiler reader that cuts tiles."""

    def __init__(self, path: Path) -> None:
        self.path = path
        reader = self._open()
        try:
            if reader.dataset.crs is None:
                raise SourceError(f"{str(path)!r} has no georeferencing (no CRS): tileclass cannot place its tiles")
            from rio_tiler.constants import WGS84_CRS

            west, south, east, north = reader.get_geographic_bounds(WGS84_CRS)
            self.footprint = BBox.of([max(west, -180.0), max(south, -MAX_LAT), min(east, 180.0), min(north, MAX_LAT)])
            self.default_zoom = min(int(reader.maxzoom), MAX_ZOOM)
            self.resolution = max(abs(reader._dst_geom_in_tms_crs[0][0]), abs(reader._dst_geom_in_tms_crs[0][4]))
            self.count, self.dtype = reader.dataset.count, reader.dataset.dtypes[0]
            self.indexes = (1, 2, 3) if self.count >= 3 else (1,)
            self.scale = None if self.dtype == "uint8" else _value_range(reader, self.indexes)
            if not reader.dataset.overviews(1) and max(reader.dataset.width, reader.dataset.height) > 4096:
                log.info("%s has no overviews: tiles below zoom %d read the full resolution (make it a COG)",
                         path.name, self.default_zoom)
        finally:
            reader.close()
        self._local = threading.local()

    def _open(self) -> Any:
        try:
            return _rio_tiler().Reader(str(self.path))
        except SourceError:
            raise
        except Exception as exc:  # rasterio's errors for a file that is not a raster
            raise SourceError(f"{str(self.path)!r} is not a readable GeoTIFF ({exc.__class__.__name__}: "
                              f"{str(exc)[:160]})") from None

    def read(self, tile: Tile) -> bytes:
        """The tile cut from the raster as an RGBA image; ``TileAbsent`` where it holds no valid pixel."""
        if tile.z is None or tile.x is None or tile.y is None:
            raise TileUnreadable("a tile of a raster needs coordinates")
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = self._open()
        indexes = self.indexes
        try:
            image = reader.tile(tile.x, tile.y, tile.z, tilesize=TILE_SIZE, indexes=indexes)
        except Exception as exc:  # outside the raster (TileOutsideBounds) or a damaged block
            if exc.__class__.__name__ == "TileOutsideBounds":
                raise TileAbsent("outside the raster") from None
            raise TileUnreadable(f"cannot cut the tile ({exc.__class__.__name__}: {str(exc)[:120]})") from None
        if not image.mask.any():
            raise TileAbsent("entirely nodata")
        if self.scale is not None:
            image.rescale(in_range=(self.scale,) * len(indexes))
        # An uncompressed TIFF: encoding and decoding it cost about 3 ms a tile, a PNG about 30 (bench/sources.py).
        # A tile without nodata goes without its alpha band: the decoder then has no mask to make.
        return bytes(image.render(img_format="GTiff", add_mask=not image.mask.all()))


def _value_range(reader: Any, indexes: tuple[int, ...]) -> tuple[float, float]:
    """The value range of the bands tiles show (for data that is not 8-bit), within a bound whatever the raster's
    size: a 512 px preview where its overviews keep that read to ``PREVIEW_PIXELS``, else the valid pixels of
    blocks spread evenly over it (an estimate, as a preview is: values beyond it are clipped when tiles are scaled).
    Without that bound a 200,000 px square raster without overviews took 1.3 GB and 20 s to preview."""
    dataset = reader.dataset
    samples: Iterable[Any]
    if _preview_pixels(dataset) <= PREVIEW_PIXELS:
        samples = [reader.preview(max_size=512, indexes=indexes).array]
    else:
        samples = (dataset.read(indexes, window=window, masked=True) for window in _sample_windows(dataset))
    low, high = float("inf"), float("-inf")
    for sample in samples:  # one window at a time
        valid = sample.compressed()
        if valid.size:
            low, high = min(low, float(valid.min())), max(high, float(valid.max()))
    if low > high:
        log.warning("%s: no valid pixel in the part read for its value range: its tiles are scaled from 0..1 (add "
                    "overviews, e.g. gdaladdo, to have it read whole)", Path(str(reader.input)).name)
        return (0.0, 1.0)
    return (low, high) if low < high else (low, low + 1.0)  # one value: a range to scale from all the same


def _preview_pixels(dataset: Any) -> int:
    """The source pixels a 512 px preview goes through: GDAL reads the coarsest overview that is fine enough."""
    fine_enough = max(dataset.width, dataset.height) / 512
    factor = max([1, *(level for level in dataset.overviews(1) if level <= fine_enough)])
    return (dataset.width // factor) * (dataset.height // factor)


def _sample_windows(dataset: Any) -> list[Any]:
    """``SAMPLE_GRID`` squared windows, each inside one block, at the middle of the cells of an even grid."""
    from rasterio.windows import Window

    block_height, block_width = dataset.block_shapes[0]
    side_y, side_x = min(block_height, SAMPLE_SIDE, dataset.height), min(block_width, SAMPLE_SIDE, dataset.width)

    def starts(size: int, block: int, side: int) -> list[int]:
        """Where windows of ``side`` begin, each centred on a cell's middle as far as its block allows."""
        found = set()
        for cell in range(SAMPLE_GRID):
            middle = size * (2 * cell + 1) // (2 * SAMPLE_GRID)
            first = middle // block * block
            found.add(max(first, min(middle - side // 2, min(first + block, size) - side)))
        return sorted(found)

    return [Window(column, row, side_x, side_y) for row in starts(dataset.height, block_height, side_y)
            for column in starts(dataset.width, block_width, side_x)]


@dataclass(frozen=True)
class RasterSource(ArchiveSource):
    kind: ClassVar[str] = "geotiff"
    suffixes: ClassVar[tuple[str, ...]] = (".tif", ".tiff")

    def open_file(self, path: Path) -> RasterFile:
        return RasterFile(path)

    def raster(self) -> RasterFile:
        """The recorded raster, open (once per process)."""
        if self.path is None:
            raise SourceError(f"{self.kind} source {self.name!r} has no recorded file")
        return self.opened(Path(self.path))

    def info(self) -> SourceInfo:
        raster = self.raster()
        return SourceInfo(self.kind, self.name, self.path, bounds=raster.footprint, zooms=(raster.default_zoom,))

    def for_enqueue(self, region: Region | None, *, settings: Settings, probes: int) -> EnqueuePlan:
        """Without ``--zoom``, the zoom closest to the raster's resolution, said to the user."""
        if region is not None and region.zooms is not None:
            return EnqueuePlan(region)
        raster = self.raster()
        zoom = raster.default_zoom
        note = (f"zoom {zoom}: the closest to the raster's resolution ({raster.resolution:.2f} m per pixel in Web "
                "Mercator); --zoom chooses another")
        if region is None:
            return EnqueuePlan(Region(zooms=[zoom]), note)
        return EnqueuePlan(Region(zooms=[zoom], bbox=region.bbox, area=region.area), note)

    def list_tiles(self, archive: RasterFile, region: Region, *, after: Key | None,
                   chunk_size: int) -> Iterator[Chunk]:
        """The cover of the footprint within the region, at its zooms or the raster's own."""
        extent = archive.footprint if region.bbox is None else archive.footprint.intersection(region.bbox)
        if extent is None:
            return iter(())
        zooms = sorted(region.zooms) if region.zooms is not None else [archive.default_zoom]
        return cover(Region(zooms=zooms, bbox=extent, area=region.area), after=after, chunk_size=chunk_size)
