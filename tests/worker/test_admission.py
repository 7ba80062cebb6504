"""Forged classify messages (issue 32, item 14), run in this process against real SQLite and PostgreSQL: only tiles
of the job's region count toward it, each once, and only under batch numbers the job handed out."""

from __future__ import annotations

import mercantile
import pytest
from sqlalchemy import select

from core import jobs
from core.bbox import BBox
from core.db import session_scope
from core.messages import ClassifyBatch
from core.region import Region
from core.schema import FailedTile, JobState, TileResult
from core.tiles import Tile
from tests.worker.conftest import World
from tests.worker.support import tile_tree
from worker import batches

pytestmark = pytest.mark.integration
ZOOM, X0, Y0, WIDTH = 17, 70000, 42000, 4


def region_of(rows: list[Tile]) -> dict[str, object]:
    """The record of a region holding exactly ``rows`` (a block of one zoom): its box is just inside their edges."""
    west, _, _, north = mercantile.bounds(min(t.x for t in rows), min(t.y for t in rows), ZOOM)
    _, south, east, _ = mercantile.bounds(max(t.x for t in rows), max(t.y for t in rows), ZOOM)
    inset = 1e-7
    return Region(zooms=[ZOOM], bbox=BBox(west + inset, south + inset, east - inset, north - inset)).describe()


def enqueued(world: World, rows: list[Tile], batch_sizes: list[int], *, finished: bool = True) -> int:
    """A job over exactly ``rows`` whose producer handed out one batch per size (recorded, or only reserved while
    it is still enqueuing, when ``finished`` is false)."""
    with session_scope() as session:
        source = {"kind": "folder", "name": "tiles", "path": str(world.root), "layout": "xyz:{z}/{x}/{y}.{ext}"}
        job = jobs.create_job(session, source=source, model_hash=world.model_hash, region=region_of(rows))
        jobs.job_row(session, job.id).seq_reserved = 256
        if finished:
            jobs.record_batches_enqueued(session, job_id=job.id, batches=list(enumerate(batch_sizes)))
            jobs.finish_enqueue(session, job_id=job.id, total_tiles=sum(batch_sizes),
                                total_batches=len(batch_sizes), skipped=0)
        return job.id


def results(job_id: int) -> set[tuple[int | None, int | None, int | None]]:
    with session_scope() as session:
        return {(r.z, r.x, r.y) for r in session.scalars(select(TileResult).where(TileResult.job_id == job_id))}


def progress(job_id: int) -> tuple[str, int, int, int]:
    with session_scope() as session:
        current = jobs.progress(session, job_id=job_id)
        return current.state, current.total, current.classified, current.failed


@pytest.fixture
def tiles(world: World) -> tuple[list[Tile], list[Tile]]:
    """8 tiles of the region (2 rows of 4) and 8 real tiles beside it (the next 2 rows), all readable."""
    made = tile_tree(world.root, 16, zoom=ZOOM, x0=X0, y0=Y0, width=WIDTH)
    return made[:8], made[8:]


def test_tiles_outside_the_region_and_repeats_are_left_out_and_never_counted(
        world: World, tiles: tuple[list[Tile], list[Tile]], caplog: pytest.LogCaptureFixture) -> None:
    inside, outside = tiles
    job = enqueued(world, inside, [4, 4])
    other_zoom = Tile(ZOOM - 1, X0 // 2, Y0 // 2, f"{ZOOM}/{X0}/{Y0}.jpg")  # a real file, at a zoom not asked for
    forged = [*inside[:4], *outside, inside[0], inside[3], other_zoom, Tile(ZOOM, X0, Y0, "elsewhere.jpg")]
    assert batches.run_batch(ClassifyBatch(job, 0, world.model_hash, "tiles", forged), world.settings) == \
        {"classified": 4, "failed": 0, "empty": 0}
    assert f"job {job} batch 0: left out 12 of its 16 tiles, outside the job's region or repeated" in caplog.text
    assert batches.run_batch(ClassifyBatch(job, 1, world.model_hash, "tiles", inside[4:]), world.settings) == \
        {"classified": 4, "failed": 0, "empty": 0}
    assert results(job) == {(t.z, t.x, t.y) for t in inside}
    assert progress(job) == (JobState.COMPLETED, 8, 8, 0)


def test_a_batch_number_the_job_never_handed_out_is_dropped(world: World,
                                                            tiles: tuple[list[Tile], list[Tile]]) -> None:
    inside, _ = tiles
    job = enqueued(world, inside, [4, 4])
    for seq in (2, 255, 2**31 - 1):  # after the last recorded batch, inside the reservation, the largest
        assert batches.run_batch(ClassifyBatch(job, seq, world.model_hash, "tiles", inside), world.settings) == \
            {"dropped": "does not match its job"}
    assert results(job) == set() and progress(job) == (JobState.QUEUED, 8, 0, 0)


def test_a_reserved_batch_runs_before_its_producer_records_it_and_counts_in_the_total(
        world: World, tiles: tuple[list[Tile], list[Tile]]) -> None:
    inside, _ = tiles
    job = enqueued(world, inside, [4, 4], finished=False)  # a fast worker: the producer has not recorded it yet
    assert batches.run_batch(ClassifyBatch(job, 0, world.model_hash, "tiles", inside[:4]), world.settings) == \
        {"classified": 4, "failed": 0, "empty": 0}
    assert progress(job) == (JobState.ENQUEUING, 4, 4, 0)  # never more classified than the total


def test_a_message_reusing_a_batch_number_with_other_tiles_is_dropped(world: World,
                                                                      tiles: tuple[list[Tile], list[Tile]]) -> None:
    inside, outside = tiles
    job = enqueued(world, inside, [4, 4])
    for forged in (inside, inside[:3], [*outside, inside[0]]):  # more tiles than batch 0 has, fewer, or one
        assert batches.run_batch(ClassifyBatch(job, 0, world.model_hash, "tiles", forged), world.settings) == \
            {"dropped": "does not match its job"}
    assert results(job) == set() and progress(job) == (JobState.QUEUED, 8, 0, 0)


def test_a_batch_that_kept_failing_records_only_the_tiles_its_job_counts(world: World,
                                                                         tiles: tuple[list[Tile], list[Tile]]) -> None:
    inside, outside = tiles
    job = enqueued(world, inside, [8])
    batches.fail_batch(ClassifyBatch(job, 0, world.model_hash, "tiles", [*inside, *outside, *inside]), "gave up")
    with session_scope() as session:
        failed = {(f.z, f.x, f.y) for f in session.scalars(select(FailedTile).where(FailedTile.job_id == job))}
    assert failed == {(t.z, t.x, t.y) for t in inside}
    assert progress(job) == (JobState.COMPLETED, 8, 0, 8)
    batches.fail_batch(ClassifyBatch(job, 9, world.model_hash, "tiles", outside), "gave up")  # not the job's
    assert progress(job) == (JobState.COMPLETED, 8, 0, 8)
