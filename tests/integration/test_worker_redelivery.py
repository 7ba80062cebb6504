"""Workers that die or are stopped mid-batch lose nothing and double nothing (Redis broker, SQLite file).

Worker A is killed with SIGKILL while it holds a batch: Redis gives that unacknowledged message to another worker
after the visibility timeout (10 s here). Worker B, started through `tileclass worker`, restores it and is
stopped with SIGTERM mid-batch: it finishes the batch it holds and exits 0. Worker C classifies what is left.
Every tile then has exactly one result and the job's counts match its tiles.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from core import jobs
from core.db import session_scope
from core.schema import FailedTile, JobBatch, JobState, TileResult
from tests.integration.test_worker_processes import deploy, job_state
from tests.worker.support import running, start_celery, start_launcher, tile_tree, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
VISIBILITY = 10
BATCHES, PER_BATCH = 14, 24


def batches_done(job_id: int) -> int:
    with session_scope() as session:
        return jobs.progress(session, job_id=job_id).batches_done


def test_sigkill_and_sigterm_mid_batch_leave_every_tile_classified_exactly_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, sqlite_url: str) -> None:
    world = deploy(tmp_path, monkeypatch, database_url=sqlite_url, broker_url=redis_url,
                   visibility_timeout=str(VISIBILITY), worker_batch_size="8")
    rows = tile_tree(world.root, BATCHES * PER_BATCH, width=24)
    job = world.send_job([rows[i : i + PER_BATCH] for i in range(0, len(rows), PER_BATCH)])
    broker = redis.Redis.from_url(redis_url)
    logs = tuple(tmp_path / f"{name}.log" for name in ("a", "b", "c"))

    # A: a plain Celery worker, killed without warning while it holds a batch (acks are late: it is unacked).
    a = start_celery(world.env, cwd=tmp_path, name="a", log=logs[0])
    with running(a):
        wait_for(lambda: batches_done(job) >= 1 and broker.hlen("unacked") == 1, timeout=90,
                 what="worker A to be in a batch", logs=logs, processes=(a,))
        a.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        a.wait(timeout=10)
    held = batches_done(job)
    assert held < BATCHES and broker.hlen("unacked") == 1  # the batch A held is neither done nor lost

    # B: restores A's message once it is older than the visibility timeout, then is stopped mid-batch.
    time.sleep(max(0.0, killed_at + VISIBILITY + 1 - time.monotonic()))
    b = start_launcher(["--device", "cpu", "--processes", "1"], world.env, cwd=tmp_path, log=logs[1])
    with running(b):
        wait_for(lambda: batches_done(job) >= held + 2, timeout=90, what="worker B to finish batches", logs=logs,
                 processes=(b,))
        b.send_signal(signal.SIGTERM)
        assert b.wait(timeout=60) == 0, logs[1].read_text()[-2000:]
    assert "Warm shutdown" in logs[1].read_text()
    assert broker.hlen("unacked") == 0  # B acknowledged the batch it was running before it exited

    # C: finishes the queue.
    c = start_celery(world.env, cwd=tmp_path, name="c", log=logs[2])
    with running(c):
        wait_for(lambda: job_state(job) == JobState.COMPLETED, timeout=90, what="the job to complete", logs=logs,
                 processes=(c,))
    with session_scope() as session:
        results = session.execute(select(TileResult.z, TileResult.x, TileResult.y)).all()
        assert sorted(results) == sorted(row[:3] for row in rows)  # each tile exactly once
        assert session.scalar(select(func.count()).select_from(FailedTile)) == 0
        counts = session.execute(select(JobBatch.classified, JobBatch.state).where(JobBatch.job_id == job)).all()
        assert counts == [(PER_BATCH, "done")] * BATCHES
        assert jobs.progress(session, job_id=job).classified == BATCHES * PER_BATCH
