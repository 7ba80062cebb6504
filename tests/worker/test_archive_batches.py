"""Hostile archives in a real batch run (``worker.batches.run_batch`` on a real database, the tiny model on the CPU):
a bad MBTiles row or a gzip-bomb PMTiles tile fails that tile alone, and a half-copied PMTiles on this host is the
host's problem, not its tiles'."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from pmtiles.tile import Compression, zxy_to_tileid
from sqlalchemy import select

from core import jobs
from core.db import session_scope
from core.errors import HostError
from core.messages import ClassifyBatch
from core.schema import FailedTile, JobState
from core.settings import load_settings
from core.sources import MBTilesSource, PMTilesSource
from core.sources.archive import MAX_TILE_BYTES, ArchiveSource
from core.tiles import Tile
from testkit.archives import directory, gzip_bomb, hand_made_pmtiles, pmtiles_from_mbtiles, write_mbtiles
from tests.worker.conftest import World
from tests.worker.support import eurosat_files
from worker import batches

pytestmark = pytest.mark.integration

GOOD = [(17, 70000 + i, 42000) for i in range(6)]  # real EuroSAT JPEGs
BAD_ROWS = {(17, 70010, 42000): ("a text row", "tile_data is TEXT, not a BLOB of image bytes"),
            (17, 70011, 42000): (10**12, "tile_data is INTEGER, not a BLOB of image bytes"),
            (17, 70012, 42000): (None, "tile_data is NULL, not a BLOB of image bytes")}


def archive_job(world: World, source: ArchiveSource, tiles: list[tuple[int, int, int]]) -> ClassifyBatch:
    """A one-batch job over ``tiles`` of ``source``, enqueued and finished, as the producer leaves it."""
    with session_scope() as session:
        job_id = jobs.create_job(session, source=source.to_record(), model_hash=world.model_hash).id
        jobs.record_batches_enqueued(session, job_id=job_id, batches=[(0, len(tiles))])
        jobs.finish_enqueue(session, job_id=job_id, total_tiles=len(tiles), total_batches=1, skipped=0)
    return ClassifyBatch(job_id, 0, world.model_hash, source.name, [Tile(*t) for t in tiles])


def failures(job_id: int) -> dict[tuple[int, int, int], str]:
    with session_scope() as session:
        rows = session.scalars(select(FailedTile).where(FailedTile.job_id == job_id))
        return {(r.z, r.x, r.y): r.reason for r in rows}


def good_rows() -> list[tuple[int, int, int, bytes]]:
    return [(*t, path.read_bytes()) for t, path in zip(GOOD, eurosat_files(len(GOOD)), strict=True)]


def test_a_bad_mbtiles_row_fails_only_its_own_tile(world: World, tmp_path: Path) -> None:
    archive = write_mbtiles(tmp_path / "rows.mbtiles", [*good_rows(), *((*t, v) for t, (v, _) in BAD_ROWS.items())])
    batch = archive_job(world, MBTilesSource.at(archive, settings=load_settings()), [*GOOD, *BAD_ROWS])
    assert batches.run_batch(batch, world.settings) == {"classified": len(GOOD), "failed": len(BAD_ROWS), "empty": 0}
    assert failures(batch.job_id) == {t: reason for t, (_, reason) in BAD_ROWS.items()}


def test_a_gzip_bomb_pmtiles_tile_fails_alone(world: World, tmp_path: Path) -> None:
    stored = sorted((zxy_to_tileid(*t), gzip.compress(data)) for *t, data in good_rows())
    bomb_tile = (17, 70020, 42000)
    stored = sorted([*stored, (zxy_to_tileid(*bomb_tile), gzip_bomb(128 << 20))])
    entries, offset = [], 0
    for tile_id, data in stored:
        entries.append((tile_id, offset, len(data), 1))
        offset += len(data)
    archive = hand_made_pmtiles(tmp_path / "bomb.pmtiles", root=directory(*entries),
                                tile_data=b"".join(data for _, data in stored), tile_compression=Compression.GZIP)
    batch = archive_job(world, PMTilesSource.at(archive, settings=load_settings()), [*GOOD, bomb_tile])
    assert batches.run_batch(batch, world.settings) == {"classified": len(GOOD), "failed": 1, "empty": 0}
    assert failures(batch.job_id) == {bomb_tile: f"tile too large: inflates to more than {MAX_TILE_BYTES} bytes"}


def test_a_half_copied_pmtiles_on_this_host_is_a_host_error_that_fails_no_tile(world: World, tmp_path: Path) -> None:
    complete = pmtiles_from_mbtiles(tmp_path / "region.pmtiles", write_mbtiles(tmp_path / "region.mbtiles",
                                                                                good_rows()))
    source = PMTilesSource.at(complete, settings=load_settings())
    batch = archive_job(world, source, GOOD)
    copy = tmp_path / "worker-host" / "region.pmtiles"  # this worker's copy, still being written
    copy.parent.mkdir()
    copy.write_bytes(complete.read_bytes()[: complete.stat().st_size // 2])
    settings = world.settings.model_copy(
        update={"sources": world.settings.sources.model_copy(update={"named": {source.name: str(copy)}})})
    with pytest.raises(HostError, match=r"region.pmtiles' is shorter than its header says: its tile data ends at "
                                        r"byte \d+, the file has \d+ bytes \(a copy cut short, or still being copied"):
        batches.run_batch(batch, settings)
    assert failures(batch.job_id) == {}
    with session_scope() as session:
        assert jobs.get_job(session, batch.job_id).state == JobState.QUEUED
    shutil.copyfile(complete, copy)  # the copy finished: the same batch now runs
    assert batches.run_batch(batch, settings) == {"classified": len(GOOD), "failed": 0, "empty": 0}
