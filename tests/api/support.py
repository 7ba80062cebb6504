"""A known region for the HTTP server's tests: a real z/x/y folder of tile images, a model, a job over it and its
results, laid out so that every overlay case has an answer worked out by hand.

The region is the 8 x 8 block of zoom-17 tiles at ``BASE`` (under one zoom-14 tile). Its labels:

- the 4 x 4 block under the zoom-15 tile ``QUAD`` holds the 16 children in the order of ``QUAD_LABELS`` (row by row),
  except one child that has no result (``QUAD_HOLE``, drawn transparent);
- the rest of the region is Forest, except the failed tile ``FAILED`` and the empty tile ``EMPTY``.

Each tile image is a flat PNG whose colour encodes its x and y, so an imagery answer can be traced to its file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import mercantile
from PIL import Image
from sqlalchemy.orm import Session

from core.bbox import BBox
from core.db import session_scope
from core.jobs import create_job, finish_enqueue, record_batch_done, record_batches_enqueued
from core.results import Empty, Failure, record_empty, record_failures, record_results
from core.tiles import Tile
from tests.factories import CLASSES, add_model, folder_source, scored

ZOOM = 17
BASE = (70400, 42992)  # x, y of the region's north-west tile: x and y divisible by 8, so it is one zoom-14 tile
SIDE = 8
QUAD = Tile(15, BASE[0] // 4, BASE[1] // 4)  # its 16 zoom-17 children are the region's north-west 4 x 4 block
QUAD_LABELS = ["Forest", "River", "Residential", "River"] * 4
QUAD_HOLE = (BASE[0] + 3, BASE[1] + 3)  # the last child of QUAD: no result
FAILED = (BASE[0] + 7, BASE[1] + 7)
EMPTY = (BASE[0] + 6, BASE[1] + 7)


@dataclass(frozen=True)
class Region:
    """What the tests need to know of the seeded database."""

    model_hash: str
    job_id: int
    root: Path

    @property
    def bbox(self) -> BBox:
        west, _, _, north = mercantile.bounds(BASE[0], BASE[1], ZOOM)
        _, south, east, _ = mercantile.bounds(BASE[0] + SIDE - 1, BASE[1] + SIDE - 1, ZOOM)
        return BBox(west, south, east, north)


def label_at(x: int, y: int) -> str | None:
    """The label the seeded region stores for tile (x, y) of zoom 17, None where it has no result."""
    if (x, y) in (QUAD_HOLE, FAILED, EMPTY):
        return None
    dx, dy = x - BASE[0], y - BASE[1]
    if dx < 4 and dy < 4:
        return QUAD_LABELS[dy * 4 + dx]
    return "Forest"


def tile_png(x: int, y: int) -> bytes:
    """The imagery of tile (x, y): a flat colour made of its coordinates."""
    out = io.BytesIO()
    Image.new("RGB", (256, 256), (x % 256, y % 256, 77)).save(out, format="PNG")
    return out.getvalue()


def write_tiles(root: Path) -> None:
    for dx in range(SIDE):
        for dy in range(SIDE):
            x, y = BASE[0] + dx, BASE[1] + dy
            folder = root / str(ZOOM) / str(x)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{y}.png").write_bytes(tile_png(x, y))


def seed(database_url: str, root: Path) -> Region:
    """Write the tile folder and record the model, the job and its results in ``database_url``."""
    write_tiles(root)
    with session_scope(database_url) as session:
        model = add_model(session)
        region = Region(model, 0, root)
        job = create_job(session, model_hash=model, source=folder_source(root, name="city"),
                         region={"zooms": [ZOOM], "bbox": region.bbox.as_list(), "geojson": None})
        _record(session, model, job.id)
        return Region(model, job.id, root)


def _record(session: Session, model: str, job_id: int) -> None:
    results, tiles = [], 0
    for dx in range(SIDE):
        for dy in range(SIDE):
            x, y = BASE[0] + dx, BASE[1] + dy
            tiles += 1
            label = label_at(x, y)
            if label is not None:
                results.append(scored(ZOOM, x, y, label, 0.7 if label == "River" else 0.9, classes=CLASSES))
    hole = Tile(ZOOM, *QUAD_HOLE, f"{ZOOM}/{QUAD_HOLE[0]}/{QUAD_HOLE[1]}.png")
    failed = Tile(ZOOM, *FAILED, f"{ZOOM}/{FAILED[0]}/{FAILED[1]}.png")
    empty = Tile(ZOOM, *EMPTY, f"{ZOOM}/{EMPTY[0]}/{EMPTY[1]}.png")
    record_results(session, model_hash=model, job_id=job_id, source_name="city", results=results)
    record_failures(session, model_hash=model, job_id=job_id, source_name="city",
                    failures=[Failure(failed, "undecodable image (corrupt data)"), Failure(hole, "no such file")])
    record_empty(session, model_hash=model, job_id=job_id, source_name="city",
                 empty=[Empty(empty, "entirely transparent")])
    record_batches_enqueued(session, job_id=job_id, batches=[(0, tiles)])
    record_batch_done(session, job_id=job_id, seq=0, tiles=tiles, classified=len(results), failed=2, empty=1)
    finish_enqueue(session, job_id=job_id, total_tiles=tiles, total_batches=1, skipped=0)
