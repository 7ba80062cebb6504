"""The imagery under a map: each result's own tile image, read from the job's recorded source on this host (a file
below its folder, or bytes from its archive)."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import BinaryIO

from PIL import Image
from sqlalchemy.orm import Session

from core.choices import IMAGE_FORMATS
from core.errors import TileRootError
from core.jobs import find_job
from core.queries import MapCell
from core.settings import Settings
from core.sources import FolderSource, TileAbsent, TileReader, TileUnreadable, source_from_record
from core.tiles import Tile
from producer.render import MAX_TILE_PX

log = logging.getLogger(__name__)


class TileImages:
    """Reads a result's own tile image from its source: the job's recorded source, found on this host."""

    def __init__(self, session: Session, settings: Settings) -> None:
        self.session, self.settings = session, settings
        self.sources: dict[tuple[str, int | None], Callable[[Tile], BinaryIO | Path] | None] = {}
        self.unreadable = 0

    def _opener(self, cell: MapCell) -> Callable[[Tile], BinaryIO | Path] | None:
        """How to open a cell's tile image: a file below its folder, or bytes read from its archive."""
        key = (cell.root_name, cell.job_id)
        if key not in self.sources:
            job = find_job(self.session, cell.job_id) if cell.job_id is not None else None
            record = job.source if job is not None and job.source.get("name") == cell.root_name else {
                "kind": "folder", "name": cell.root_name, "path": None, "layout": "plain"}
            found: Callable[[Tile], BinaryIO | Path] | None = None
            try:
                source = source_from_record(record)
                if isinstance(source, FolderSource):
                    root = source.local_root(self.settings)
                    if not root.is_dir():
                        raise TileRootError(f"{root} is not a readable folder")
                    found = partial(source.locate, root)
                else:
                    found = _bytes_of(source.reader(self.settings))
            except TileRootError as exc:
                log.warning("no imagery for root %r: %s", cell.root_name, exc)
            self.sources[key] = found
        return self.sources[key]

    def __call__(self, cell: MapCell) -> Image.Image | None:
        opener = self._opener(cell)
        if opener is None:
            return None
        try:
            with Image.open(opener(cell.tile), formats=IMAGE_FORMATS) as picture:
                picture.draft("RGB", (MAX_TILE_PX, MAX_TILE_PX))
                return picture.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError, TileRootError, TileUnreadable,
                TileAbsent) as exc:
            # A missing or corrupt tile image only loses its backdrop; the tile is still drawn in its colour.
            log.debug("no imagery for %s: %s", cell.tile, exc)
            self.unreadable += 1
            return None


def _bytes_of(archive: TileReader) -> Callable[[Tile], BinaryIO]:
    return lambda tile: io.BytesIO(archive.read(tile))
