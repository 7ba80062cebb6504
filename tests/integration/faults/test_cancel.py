"""`tileclass cancel JOB`: pending batches are dropped by the workers without running, running ones finish."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from core.db import session_scope
from core.schema import BatchState, Job, JobBatch, TileResult
from tests.integration.faults.conftest import World
from tests.integration.faults.harness import batches_done, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_cancel_drops_pending_batches_and_the_job_shows_cancelled(world: World) -> None:
    job = world.enqueue()
    wait_for(lambda: batches_done(job) >= 2, timeout=120, what="two batches", pool=world.pool, interval=0.02)
    out = json.loads(world.cli("cancel", str(job), "--json"))
    assert out[0]["state"] == "cancelled" and out[0]["not_classified"] > 0
    wait_for(lambda: world.redis.queued() == (0, 0), timeout=60, what="the workers to drop the pending batches",
             pool=world.pool)

    with session_scope(read_only=True) as session:
        # When the cancel was written, not when the CLI was started: batches may finish while it starts up.
        cancelled_at = session.scalar(select(Job.finished_at).where(Job.id == job))
        assert cancelled_at is not None
        done = session.execute(select(JobBatch.seq, JobBatch.classified, JobBatch.finished_at).where(
            JobBatch.job_id == job, JobBatch.state == BatchState.DONE)).all()
        results = session.scalar(select(func.count()).select_from(TileResult).where(
            TileResult.model_hash == world.model_hash))
    total = len(world.deployment.rows)
    assert len(done) < total // 12 - 2  # most batches never ran
    assert sum(1 for _, _, finished in done if finished > cancelled_at) <= len(world.pool.slots)  # those running
    assert results == sum(classified for _, classified, _ in done)  # nothing classified beyond the done batches
    dropped = {seq for event, _, seq in world.pool.runs(job) if event == "end"} - {seq for seq, _, _ in done}
    assert dropped  # batches the workers took after the cancel and dropped without classifying
    status = json.loads(world.cli("status", str(job), "--json"))
    assert status["state"] == "cancelled" and status["classified"] == results
    again = json.loads(world.cli("cancel", str(job), "--json"))
    assert again[0]["was_cancelled"]
