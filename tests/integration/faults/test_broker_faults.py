"""Redis killed and restarted from its append-only file, restarted empty (then `tileclass resume`), and its client
connections cut, each in the middle of a 240-tile job on two real workers."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from core.db import session_scope
from core.schema import TileResult
from tests.integration.faults.conftest import World
from tests.integration.faults.harness import batches_done, wait_complete, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def midway(world: World, job_id: int, batches: int = 4) -> None:
    wait_for(lambda: batches_done(job_id) >= batches, timeout=120, what=f"{batches} batches of job {job_id}",
             pool=world.pool, interval=0.05)


def classified_tiles(model_hash: str) -> set[tuple[int, int, int]]:
    with session_scope(read_only=True) as session:
        rows = session.execute(select(TileResult.z, TileResult.x, TileResult.y)
                               .where(TileResult.model_hash == model_hash)).all()
        return {(z, x, y) for z, x, y in rows}


def test_redis_killed_and_restarted_from_its_append_only_file_loses_nothing(world: World) -> None:
    job = world.enqueue()
    midway(world, job)
    waiting_before, _ = world.redis.queued()
    world.redis.restart()  # SIGKILL, then the same data folder
    waiting_after, held_after = world.redis.queued()
    assert waiting_after + held_after > 0 and waiting_after >= waiting_before - 2  # the AOF kept the queue
    wait_complete(job, world.pool)
    world.check([job])


def test_redis_restarted_empty_then_resume_enqueues_exactly_the_missing_tiles(world: World) -> None:
    job = world.enqueue()
    midway(world, job)
    world.redis.restart(empty=True)  # the queue is gone
    # Let the batches that were running when Redis went away finish; nothing else can start now.
    wait_for(lambda: not world.pool.busy(job), timeout=60, what="the workers to go idle", pool=world.pool)
    time.sleep(1.0)
    assert not world.pool.busy(job)
    missing = {row[:3] for row in world.deployment.rows} - classified_tiles(world.model_hash)
    assert missing, "the job finished before Redis was wiped: nothing was left to lose"

    report = json.loads(world.cli("resume", str(job), "--json"))
    assert report["enqueued"] == len(missing)
    assert report["found"] == len(world.deployment.rows)
    assert report["classified"] == len(world.deployment.rows) - len(missing)
    assert report["superseded_batches"] >= 1
    wait_complete(job, world.pool)
    world.check([job])
    status = json.loads(world.cli("status", str(job), "--json"))
    assert (status["state"], status["total"], status["classified"]) == (
        "completed", len(world.deployment.rows), len(world.deployment.rows))


def test_broker_connections_cut_mid_job_lose_nothing(world: World) -> None:
    job = world.enqueue()
    midway(world, job)
    admin = world.redis.client()
    cut = 0
    for _ in range(3):  # every worker and producer connection, three times over
        cut += int(admin.client_kill_filter(_type="normal", skipme=True))
        time.sleep(0.7)
    admin.close()
    assert cut >= 2
    wait_complete(job, world.pool)
    world.check([job])
