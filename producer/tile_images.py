"""The imagery under a map: each result's own tile image, read from the job's recorded source on this host through
its reader (``source.reader(settings).read(tile)``, whatever its kind)."""

from __future__ import annotations

import io
import logging

from PIL import Image
from sqlalchemy.orm import Session

from core.choices import IMAGE_FORMATS
from core.errors import HostError
from core.jobs import find_job
from core.queries import MapCell
from core.settings import Settings
from core.sources import source_from_record
from core.sources.base import SourceError, TileAbsent, TileReader, TileUnreadable
from producer.render import MAX_TILE_PX

log = logging.getLogger(__name__)


class TileImages:
    """Reads a result's own tile image from its source: the job's recorded source, found on this host."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self.session, self.settings = session, settings
        self.sources: dict[tuple[str, int | None], TileReader | None] = {}
        self.unreadable = 0

    def _reader(self, cell: MapCell) -> TileReader | None:
        """The reader of a cell's source on this host (None: none here, said once)."""
        key = (cell.source_name, cell.job_id)
        if key not in self.sources:
            job = find_job(self.session, cell.job_id) if cell.job_id is not None else None
            record = job.source if job is not None and job.source.get("name") == cell.source_name else {
                "kind": "folder", "name": cell.source_name, "path": None, "layout": "plain"}
            found: TileReader | None = None
            try:
                found = source_from_record(record).reader(self.settings)
            except SourceError as exc:
                log.warning("no imagery for source %r: %s", cell.source_name, exc)
            self.sources[key] = found
        return self.sources[key]

    def __call__(self, cell: MapCell) -> Image.Image | None:
        reader = self._reader(cell)
        if reader is None:
            return None
        try:
            data = reader.read(cell.tile)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as picture:
                picture.draft("RGB", (MAX_TILE_PX, MAX_TILE_PX))
                return picture.convert("RGB")
        except HostError:
            raise  # a tile server down: the render stops with why, as the CLI's other host problems do
        except (OSError, ValueError, Image.DecompressionBombError, SourceError, TileUnreadable, TileAbsent) as exc:
            # A missing or corrupt tile image only loses its backdrop; the tile is still drawn in its colour.
            log.debug("no imagery for %s: %s", cell.tile, exc)
            self.unreadable += 1
            return None
