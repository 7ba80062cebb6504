"""A worker whose host cannot serve a job: it puts the batches back, fails no tile, and others classify them.

Each scenario adds one worker with a wrong ``TILECLASS_TILE_ROOTS`` next to the deployment's two healthy ones. The
healthy ones are frozen (SIGSTOP) until the wrong one has met the job, so that it surely touches the job's batches;
then they are let go and must classify every tile.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.settings import get_settings
from core.sources.roots import source_name_for
from tests.integration.faults.conftest import World
from tests.integration.faults.harness import WorkerPool, wait_complete, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@contextlib.contextmanager
def frozen(pids: list[int]) -> Iterator[None]:
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def wrong_worker(world: World, folder: Path, roots: dict[str, str]) -> WorkerPool:
    env = world.pool.env | {"TILECLASS_TILE_ROOTS": json.dumps(roots), "TILECLASS_WORKER_HOST_COOLDOWN": "3",
                            "TILECLASS_TEST_FAULTS": str(folder / "hooks-state")}
    folder.mkdir(parents=True, exist_ok=True)
    pool = WorkerPool(env, folder=folder, count=1)
    pool.start()
    return pool


def status(world: World, job: int) -> dict[str, Any]:
    return dict(json.loads(world.cli("status", str(job), "--json")))


def test_a_worker_with_a_wrong_root_mapping_puts_batches_back_and_the_other_workers_classify_all(
        world: World, tmp_path: Path) -> None:
    source_name = source_name_for(world.deployment.root, get_settings())
    other = tmp_path / "another-root"
    other.mkdir()
    (other / "something").write_text("a root that is mounted")
    wrong = wrong_worker(world, tmp_path / "wrong", {source_name: str(tmp_path / "not-mounted"), "other": str(other)})
    try:
        with frozen(list(world.pool.children())):
            job = world.enqueue()
            wait_for(lambda: bool(status(world, job)["host_problems"]), timeout=60,
                     what="the wrong worker to report its host problem", pool=wrong)
        problem = status(world, job)["host_problems"][0]
        assert source_name in problem["reason"] and "cannot be read" in problem["reason"]
        wait_complete(job, world.pool)
        world.check([job])  # every tile classified with the reference label, none failed, the broker empty
        assert wrong.slots[0].process is not None and wrong.slots[0].process.poll() is None  # still serving
        log = wrong.tails(lines=400)
        assert "host problem, not the tiles'" in log and "Traceback" not in log
        table = world.cli("status", str(job))
        assert "host problem on" in table
    finally:
        wrong.stop()


def test_a_worker_whose_every_root_is_missing_exits_non_zero_and_loses_nothing(world: World, tmp_path: Path) -> None:
    source_name = source_name_for(world.deployment.root, get_settings())
    wrong = wrong_worker(world, tmp_path / "broken", {source_name: str(tmp_path / "not-mounted")})
    launcher = wrong.slots[0].process
    assert launcher is not None
    try:
        with frozen(list(world.pool.children())):
            job = world.enqueue()
            launcher.wait(timeout=60)  # the broken host stops instead of spinning through the queue
            assert status(world, job)["host_problems"][0]["job_id"] == 0  # the whole host, shown on the queued job
        assert launcher.returncode != 0
        assert "this host cannot serve any job, exiting with code 3" in wrong.tails(lines=400)
        wait_complete(job, world.pool)
        world.check([job])
    finally:
        wrong.stop()
