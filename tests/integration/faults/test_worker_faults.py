"""Worker processes that are killed, stopped or frozen mid-batch, and a tile that kills its worker every time.

Each scenario runs a 240-tile job (20 batches) on the two workers of the deployment, hits a worker while it
holds a batch, and then checks the invariants of docs/RELIABILITY.md (harness.check_invariants).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from core.db import session_scope
from core.schema import FailedTile
from tests.integration.faults.conftest import World
from tests.integration.faults.harness import (
    CRASH,
    VISIBILITY,
    batches_done,
    make_region,
    poison,
    reference_labels,
    wait_complete,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def busy_worker(world: World, job_id: int, *, after_batches: int = 1) -> tuple[int, int]:
    """(pid, seq) of a worker in the middle of one of ``job_id``'s batches, once some batches are done."""
    found: list[tuple[int, int]] = []

    def hit() -> bool:
        if batches_done(job_id) < after_batches:
            return False
        found[:] = [(pid, seq) for pid, (_, _, seq) in world.pool.busy(job_id).items()]
        return bool(found)

    wait_for(hit, timeout=120, what=f"a worker busy with job {job_id}", pool=world.pool, interval=0.02)
    return found[0]


def test_a_worker_killed_mid_batch_loses_nothing(world: World) -> None:
    job = world.enqueue()
    pid, seq = busy_worker(world, job)
    os.kill(pid, signal.SIGKILL)
    assert world.redis.queued()[1] >= 1  # its batch is delivered, unacknowledged: neither done nor lost
    wait_complete(job, world.pool)
    world.check([job])
    runs = world.pool.runs(job)
    assert ("start", pid, seq) in runs and ("end", pid, seq) not in runs
    assert any(event == "end" and other != pid and s == seq for event, other, s in runs)  # redelivered elsewhere


def test_a_worker_stopped_with_sigterm_finishes_its_batch_and_exits_0(world: World) -> None:
    job = world.enqueue()
    pid, seq = busy_worker(world, job)
    launcher = world.pool.launcher_of(pid)
    launcher.send_signal(signal.SIGTERM)  # `tileclass worker` forwards it: Celery's warm shutdown
    assert launcher.wait(timeout=60) == 0
    runs = world.pool.runs(job)
    assert ("end", pid, seq) in runs  # the batch it held was finished, not abandoned
    assert sum(1 for event, _, s in runs if event == "start" and s == seq) == 1  # and never ran twice
    wait_complete(job, world.pool)
    world.check([job])


def test_a_worker_frozen_past_the_visibility_timeout_runs_its_batch_twice_harmlessly(world: World) -> None:
    job = world.enqueue()
    pid, seq = busy_worker(world, job)
    os.kill(pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        wait_for(lambda: any(event == "end" and other != pid and s == seq
                             for event, other, s in world.pool.runs(job)),
                 timeout=90, what=f"batch {seq} to be redelivered to the other worker", pool=world.pool)
        assert time.monotonic() - frozen_at >= VISIBILITY - 1  # not before the visibility timeout
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: ("end", pid, seq) in world.pool.runs(job), timeout=60, what="the frozen worker to finish",
             pool=world.pool)
    wait_complete(job, world.pool)
    world.check([job])


def test_a_poison_tile_is_failed_after_bounded_deaths_and_the_queue_drains(world: World) -> None:
    root = world.deployment.folder / "poison-tiles"
    rows = make_region(root, 48, x0=35000, first=561)
    bad = rows[17]
    poison(root, bad)
    reference = reference_labels(world.deployment.checkpoint, root, [r for r in rows if r != bad])
    deaths_before, restarts_before = world.pool.poisoned(), world.pool.restarts
    job = world.enqueue(root=root)
    wait_complete(job, world.pool, timeout=200)
    world.check([job], rows=rows, reference=reference, failed=(bad[3],))
    # Once in its batch, once alone; then it is failed instead of being delivered again.
    assert world.pool.poisoned() - deaths_before == 2
    assert world.pool.restarts - restarts_before == 2
    with session_scope() as session:
        failure = session.query(FailedTile).filter_by(model_hash=world.model_hash).one()
        assert "died while classifying this tile" in failure.reason


def test_a_batch_that_keeps_raising_is_retried_by_the_worker_then_its_tiles_fail(world: World) -> None:
    """An unexpected error (not one tile's fault) gets TILECLASS_WORKER_MAX_RETRIES (1 here) more tries, re-sent
    through the broker with a delay, on real workers; then the batch's tiles fail with the reason, the rest of the
    job completes, and the queue drains."""
    root = world.deployment.folder / "crash-tiles"
    rows = make_region(root, 24, x0=36000, first=573)
    bad = rows[13]
    poison(root, bad, marker=CRASH)
    job = world.enqueue(root=root)
    wait_complete(job, world.pool, timeout=120)
    # The walk goes column by column (two tiles each): batches of 12 are columns 0-5 and 6-15; the second fails.
    first_batch = [row for row in rows if row[1] < 36006]
    second_batch = {row[3] for row in rows if row[1] >= 36006}
    assert len(first_batch) == len(second_batch) == 12
    world.check([job], rows=rows, reference=reference_labels(world.deployment.checkpoint, root, first_batch),
                failed=tuple(sorted(second_batch)))
    with session_scope() as session:
        reasons = {f.reason for f in session.query(FailedTile).filter_by(model_hash=world.model_hash)}
    assert reasons == {"batch failed 2 times: RuntimeError: CUDA out of memory"}
    crashes = [line for line in (world.pool.state / "runs.log").read_text().splitlines()
               if line.startswith("crash ") and line.endswith(bad[3].rsplit("/", 1)[1])]
    assert len(crashes) >= 2  # the first try and its retry, each in a worker process
