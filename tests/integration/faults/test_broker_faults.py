"""Redis killed and restarted from its append-only file, restarted empty (then `tileclass resume`), and its client
connections cut, each in the middle of a 240-tile job on two real workers."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from core import jobs
from core.db import session_scope
from core.models.registry import register_checkpoint
from core.schema import JobState, TileResult
from core.settings import get_settings
from tests.integration.faults.conftest import World
from tests.integration.faults.harness import (
    WorkerPool,
    batches_done,
    check_invariants,
    embedded_queue,
    job_state,
    make_region,
    reference_labels,
    wait_complete,
    wait_for,
    worker_env,
)

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


def test_on_the_embedded_broker_a_killed_worker_loses_its_batch_and_resume_brings_it_back(
        tmp_path: Path, sqlite_url: str, trained_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from producer.cli import app

    settings = {"TILECLASS_DATABASE_URL": sqlite_url, "TILECLASS_DATA_DIR": str(tmp_path / "state"),
                "TILECLASS_MODEL_DIR": str(tmp_path / "models"), "TILECLASS_WORKER_BATCH_SIZE": "4"}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    with session_scope() as session:
        model = register_checkpoint(session, checkpoint=trained_checkpoint, settings=get_settings()).hash
    root = tmp_path / "tiles"
    rows = make_region(root, 48)
    pool = WorkerPool(worker_env(settings, state=tmp_path / "hooks", tile_delay=0.05), folder=tmp_path, count=1)
    try:
        pool.start()
        out = CliRunner().invoke(app, ["enqueue", str(root), "--model", model, "--batch-size", "12", "--json"])
        job = json.loads(out.stdout)["job_id"]
        wait_for(lambda: bool(pool.busy(job)), timeout=60, what="the worker to take a batch", pool=pool,
                 interval=0.02)
        (pid, (_, _, lost)), = pool.busy(job).items()
        os.kill(pid, signal.SIGKILL)  # the filesystem broker removed the message when the worker took it
        wait_for(lambda: embedded_queue() == 0 and not pool.busy(job) and batches_done(job) == 3, timeout=120,
                 what="the other batches", pool=pool)
        time.sleep(1.0)
        assert job_state(job) == JobState.QUEUED and batches_done(job) == 3  # the lost batch never comes back
        report = json.loads(CliRunner().invoke(app, ["resume", str(job), "--json"]).stdout)
        assert (report["enqueued"], report["superseded_batches"]) == (12, 1)
        wait_complete(job, pool)
        check_invariants(model_hash=model, job_ids=[job], rows=rows, reference=reference_labels(
            trained_checkpoint, root, rows), redis_server=None, pool=pool)
        with session_scope() as session:
            assert jobs.progress(session, job_id=job).classified == 48
        assert ("start", pid, lost) in pool.runs(job)
    finally:
        pool.stop()
