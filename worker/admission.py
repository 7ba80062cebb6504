"""What of a classify message its job counts: the batch number must be the job's, each tile in its region, once.

Anyone who can publish to the broker can send a well-formed message naming a real job (issue 32 counted tiles of
such messages: "total 48, classified 64"). Each check below costs one primary-key read or a set lookup per tile:

- The batch number must be one the producer handed out: a ``job_batches`` row, or, while the job is being
  enqueued, a number below its reservation (``jobs.seq_reserved``, written before any of its numbers reaches the
  broker; a pass records every batch it published before the job leaves ``enqueuing``; see
  ``producer.publication``). Any other number is dropped: it would add a batch the job never had.
- A tile outside the job's region (its zooms and box, ``core.region.Region.outline``) is left out, and so is a
  repeat of a tile earlier in the message: neither is classified, recorded or counted.
- A batch whose row is recorded (and not superseded) must still have as many tiles as its row says: a message
  that reuses another batch's number with other tiles is dropped. So a batch never counts more tiles than it has,
  and the job never more than its total. Repeats across batches land on the same result row (results are keyed
  by tile), and a producer never sends a tile in two live batches of one job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache

from sqlalchemy.orm import Session

from core.messages import ClassifyBatch
from core.region import Region
from core.schema import BatchState, Job, JobBatch, JobState
from core.tiles import Tile


@dataclass(frozen=True)
class Admission:
    """The batch to run (the message's tiles of the job's region, each once), or why the message is dropped."""

    batch: ClassifyBatch
    left_out: int = 0  # tiles outside the region or repeated
    problem: str | None = None


def admit(session: Session, batch: ClassifyBatch, job: Job) -> Admission:
    """Check ``batch`` against ``job``, the job it names (its kind, model and source already match)."""
    recorded = session.get(JobBatch, (job.id, batch.seq))
    if recorded is None and not (job.state == JobState.ENQUEUING and batch.seq < job.seq_reserved):
        return Admission(batch, problem=f"names batch {batch.seq}, which the job never handed out")
    tiles = _tiles_of(job.region, batch.tiles)
    if recorded is not None and recorded.state != BatchState.CANCELLED and recorded.tiles != len(tiles):
        return Admission(batch, problem=f"has {len(tiles)} distinct tiles of the job's region, but its batch "
                                        f"{batch.seq} was enqueued with {recorded.tiles}")
    return Admission(replace(batch, tiles=tiles), left_out=len(batch.tiles) - len(tiles))


def _tiles_of(region_record: dict[str, object], tiles: list[Tile]) -> list[Tile]:
    """``tiles`` in the region, each once (the first of repeats), in their order."""
    region = _outline(json.dumps(region_record, sort_keys=True))
    kept: dict[tuple[int, int, int, int, str], Tile] = {}
    for tile in tiles:
        if tile.identity() not in kept and _inside(region, tile):
            kept[tile.identity()] = tile
    return list(kept.values())


def _inside(region: Region | None, tile: Tile) -> bool:
    if region is None:
        return True
    if tile.z is None or tile.x is None or tile.y is None:  # only a whole tree can hold tiles without coordinates
        return False
    return region.contains(tile.z, tile.x, tile.y)


@lru_cache(maxsize=64)
def _outline(region_json: str) -> Region | None:
    """A job's region for checking tiles (cached: every batch of a job asks for the same one)."""
    return Region.outline(json.loads(region_json))
