"""A job's imagery, for the map's base layer: tiles read from the job's own source and nothing else.

Each job's source is opened once per server process (``core.sources``: a folder read through its layout, an
MBTiles/PMTiles archive, a tile server fetched with the workers' retries, a GeoTIFF cut by rio-tiler) and asked
only for tiles of the job: at the zooms it asked for, inside its region's extent. Anything else is ``OutsideTheJob``
(an empty 204: nothing to draw there, not an error), a tile the source lacks is 404, and a folder's reader never reads
a path outside the folder. A source that cannot be read now but may be later (a tile server down or too slow: a
``HostError``) is 503 with ``Retry-After``. The route runs these reads on threads of their own
(``api.imagery_gate``).

JPEG, PNG, WebP and GIF tiles are sent as they are stored (their type is read from their first bytes, never from a
name), anything else (a raster's TIFF) is re-encoded as PNG.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import mercantile
from PIL import Image
from sqlalchemy.orm import Session

from api.errors import Unavailable
from core.bbox import BBox
from core.choices import IMAGE_FORMATS
from core.errors import HostError, NotFoundError, TileError
from core.jobs import get_job
from core.region import Region
from core.settings import Settings
from core.sources import source_from_record
from core.sources.base import SourceError, TileAbsent, TileReader, TileUnreadable
from core.tiles import Tile

MAX_PIXELS = 4096 * 4096
PASSED_THROUGH = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png", b"GIF87a": "image/gif",
                  b"GIF89a": "image/gif"}
_OPEN_JOBS = 64
# About how long a tile server's reader keeps answering "down" once it found the server down (core.sources.url).
SOURCE_RETRY_AFTER = 30


class OutsideTheJob(Exception):
    """The tile is outside the job's extent or zooms: the job has no imagery there, and its source is not asked."""


@dataclass(frozen=True)
class Picture:
    data: bytes
    media_type: str


@dataclass(frozen=True)
class JobImagery:
    """One job's source, open, and the part of the map it may be read for."""

    reader: TileReader
    region: Region | None

    def allows(self, tile: Tile) -> bool:
        if self.region is None:
            return True
        z, x, y = tile.xyz()
        if not self.region.allows_zoom(z):
            return False
        extent = self.region.extent
        if extent is None:
            return True
        west, south, east, north = mercantile.bounds(x, y, z)
        return west < extent.east and east > extent.west and south < extent.north and north > extent.south


class ImageryReaders:
    """The open sources of the jobs the map has shown, the most recent ``_OPEN_JOBS`` of them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._open: OrderedDict[int, JobImagery] = OrderedDict()
        self._lock = threading.Lock()

    def for_job(self, session: Session, job_id: int) -> JobImagery:
        with self._lock:
            if job_id in self._open:
                self._open.move_to_end(job_id)
                return self._open[job_id]
        job = get_job(session, job_id)
        try:
            reader = source_from_record(job.source).reader(self.settings)
        except SourceError as exc:  # missing or unusable on this host, a secret unset here
            raise NotFoundError(f"job {job_id}'s imagery is not readable on this host: {exc}") from None
        opened = JobImagery(reader, _region(job.region))
        with self._lock:
            self._open[job_id] = opened
            while len(self._open) > _OPEN_JOBS:
                self._open.popitem(last=False)
        return opened

    def picture(self, session: Session, *, job_id: int, tile: Tile) -> Picture:
        """The job's image of ``tile``; ``OutsideTheJob`` outside its extent, ``NotFoundError`` where its source has
        none."""
        imagery = self.for_job(session, job_id)
        # The job is known: the session's database connection goes back to the pool now, not after a read that may
        # wait on a tile server until the fetch deadline (slow imagery holding the pool would starve other routes).
        session.commit()
        if not imagery.allows(tile):
            raise OutsideTheJob(f"tile {tile} is outside job {job_id}'s region")
        try:
            data = imagery.reader.read(tile)
        except (TileAbsent, TileUnreadable) as exc:
            raise NotFoundError(f"no image of tile {tile} in job {job_id}'s source: {exc.reason}") from None
        except HostError as exc:  # a tile server down or too slow: the map may ask again later
            raise Unavailable(f"job {job_id}'s source cannot be read now: {exc.reason}",
                              retry_after=SOURCE_RETRY_AFTER) from None
        except SourceError as exc:  # a raster that cannot be opened again on this host: the same 404, with why
            raise NotFoundError(f"job {job_id}'s source cannot be read now: {exc}") from None
        return as_web_image(data)


def as_web_image(data: bytes) -> Picture:
    """``data`` as an image a browser shows: passed through when it is one, else re-encoded as PNG."""
    for magic, media_type in PASSED_THROUGH.items():
        if data.startswith(magic):
            return Picture(data, media_type)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return Picture(data, "image/webp")
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            if image.width * image.height > MAX_PIXELS:
                raise NotFoundError(f"image too large to show ({image.width}x{image.height})")
            out = io.BytesIO()
            image.convert("RGBA").save(out, format="PNG", compress_level=1)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise NotFoundError(f"the tile is not an image this server shows ({exc.__class__.__name__})") from None
    return Picture(out.getvalue(), "image/png")


def _region(record: dict[str, Any]) -> Region | None:
    try:
        return Region.from_record(record)
    except TileError:  # its GeoJSON file changed or moved: the recorded zooms and bbox still bound it
        zooms, bbox = record.get("zooms"), record.get("bbox")
        return Region(zooms=zooms, bbox=BBox.of(bbox) if bbox else None)
