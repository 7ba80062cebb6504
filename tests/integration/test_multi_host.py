"""Many hosts, simulated here: two groups of real `tileclass worker` processes ("hosts" a and b) that see the same
tile storage at different paths (each through its own TILECLASS_TILE_ROOTS entry, a symlink to the storage), share
one Redis and one PostgreSQL, and take batches of the same jobs. Then one host is cut off mid-job — every process of
it SIGKILLed, or frozen with SIGSTOP as a host that hangs or loses the network — and the other finishes the job:
every tile once, nothing lost or doubled, labels as a fault-free run gives them.

Built on the fault suite's harness (tests/integration/faults/harness.py): its private Redis, worker pools with
test hooks (which log each tile read, so the test sees which path each host read through), region and invariants.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.db import session_scope
from core.models.registry import register_checkpoint
from core.settings import get_settings
from core.tiles import Tile
from producer.cli import app
from tests.integration.faults.harness import (
    VISIBILITY,
    PrivateRedis,
    WorkerPool,
    check_invariants,
    make_region,
    private_database,
    reference_labels,
    scenario_model,
    wait_complete,
    wait_for,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REGION_TILES, BATCH = 240, 12
TILE_DELAY = 0.03  # slow storage: a batch lasts long enough to be cut off in the middle


@dataclass
class Host:
    name: str
    mount: Path  # where this host sees the tile storage
    pool: WorkerPool

    def runs(self, job_id: int) -> list[tuple[str, int, int]]:
        return self.pool.runs(job_id)

    def reads(self) -> list[str]:
        log = self.pool.state / "runs.log"
        return [line.split(" ", 2)[2] for line in log.read_text().splitlines() if line.startswith("read ")]

    def processes(self) -> list[int]:
        """Every process of the host: its launchers and their Celery workers."""
        launchers = [slot.process.pid for slot in self.pool.slots
                     if slot.process is not None and slot.process.poll() is None]
        return [*self.pool.children(), *launchers]


@dataclass
class Fleet:
    hosts: tuple[Host, Host]
    redis: PrivateRedis
    settings: dict[str, str]
    storage: Path
    rows: list[Tile]
    reference: dict[tuple[int, int, int], str]
    checkpoint: Path
    folder: Path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, trained_checkpoint: Path) -> Iterator[Fleet]:
    folder = tmp_path_factory.mktemp("hosts")
    storage = folder / "storage" / "tiles"
    rows = make_region(storage, REGION_TILES)
    redis = PrivateRedis(folder / "redis")
    redis.start()
    pools: list[WorkerPool] = []
    try:
        with private_database("tileclass_hosts") as database:
            settings = {"TILECLASS_DATABASE_URL": database, "TILECLASS_BROKER_URL": redis.url,
                        "TILECLASS_MODEL_DIR": str(folder / "models"), "TILECLASS_VISIBILITY_TIMEOUT": str(VISIBILITY),
                        "TILECLASS_WORKER_BATCH_SIZE": "4", "TILECLASS_WORKER_DECODE_THREADS": "1",
                        "TILECLASS_WORKER_MAX_RETRIES": "1"}
            hosts = []
            for name in ("a", "b"):
                home = folder / f"host-{name}"
                mount = home / "mnt" / "ortho"
                mount.parent.mkdir(parents=True)
                mount.symlink_to(storage, target_is_directory=True)
                env = worker_env(settings | {"TILECLASS_TILE_ROOTS": json.dumps({"ortho": str(mount)}),
                                             "TILECLASS_DATA_DIR": str(home / "state")},
                                 state=home / "hooks", tile_delay=TILE_DELAY) | {"TILECLASS_TEST_LOG_READS": "1"}
                pool = WorkerPool(env, folder=home, count=2)
                pools.append(pool)
                hosts.append(Host(name, mount, pool))
            for pool in pools:  # both hosts boot at once
                for slot in pool.slots:
                    pool._spawn(slot)
            for pool in pools:
                pool.wait_ready()
            reference = reference_labels(trained_checkpoint, storage, rows)
            yield Fleet((hosts[0], hosts[1]), redis, settings, storage, rows, reference, trained_checkpoint, folder)
    finally:
        for pool in pools:
            pool.stop()
        redis.stop()


@pytest.fixture
def producer(fleet: Fleet, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """This process as the producer on host a (its path to the storage), with a model of the test's own."""
    for key, value in fleet.settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TILECLASS_TILE_ROOTS", json.dumps({"ortho": str(fleet.hosts[0].mount)}))
    get_settings.cache_clear()
    for host in fleet.hosts:  # a host cut off by an earlier test comes back, as its service manager would do it
        host.pool.supervise()
        host.pool.wait_ready()
    checkpoint = scenario_model(fleet.checkpoint, fleet.folder / "models-made", request.node.name[-40:])
    with session_scope() as session:
        return register_checkpoint(session, checkpoint=checkpoint, settings=get_settings()).hash


def enqueue(model: str) -> int:
    result = CliRunner().invoke(app, ["enqueue", "@ortho", "--model", model, "--batch-size", str(BATCH),
                                      "--max-queued", "1000", "--json"])
    assert result.exit_code == 0, result.output
    return int(json.loads(result.stdout)["job_id"])


def check(fleet: Fleet, model: str, job: int, survivor: Host) -> None:
    check_invariants(model_hash=model, job_ids=[job], rows=fleet.rows, reference=fleet.reference,
                     redis_server=fleet.redis, pool=survivor.pool)


def ended(host: Host, job: int) -> set[int]:
    return {seq for event, _, seq in host.runs(job) if event == "end"}


def test_two_hosts_reading_one_storage_through_their_own_paths_share_a_job(fleet: Fleet, producer: str) -> None:
    job = enqueue(producer)
    wait_complete(job, fleet.hosts[1].pool)

    check(fleet, producer, job, fleet.hosts[1])
    a, b = fleet.hosts
    assert ended(a, job) and ended(b, job), "both hosts took batches of the job"
    assert ended(a, job) | ended(b, job) == set(range(REGION_TILES // BATCH))
    for host in fleet.hosts:
        assert host.reads() and all(path.startswith(f"{host.mount}/") for path in host.reads()), host.name


@pytest.mark.parametrize("cut", ["killed", "frozen"])
def test_a_host_cut_off_mid_job_loses_nothing_and_the_other_host_finishes(fleet: Fleet, producer: str,
                                                                        cut: str) -> None:
    cut_off, survivor = fleet.hosts
    job = enqueue(producer)
    wait_for(lambda: bool(cut_off.pool.busy(job)) and bool(ended(survivor, job)), timeout=90, interval=0.02,
             what="host a to be mid-batch while host b has finished one", pool=None)
    processes = cut_off.processes()
    held = {seq for _, _, seq in cut_off.pool.busy(job).values()}
    for pid in processes:  # the Celery workers first, so that no launcher forwards a warm shutdown
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL if cut == "killed" else signal.SIGSTOP)
    try:
        # Host a's batches come back to the queue after the visibility timeout; host b runs them.
        wait_complete(job, survivor.pool, timeout=120)
        check(fleet, producer, job, survivor)
        assert held and held <= ended(survivor, job), "the batches host a held were finished by host b"
        assert not held & ended(cut_off, job)
    finally:
        if cut == "frozen":
            for pid in processes:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
    if cut == "frozen":
        # Thawed, host a finishes the batches it held: they ran twice, and still every tile has one result.
        wait_for(lambda: held <= ended(cut_off, job), timeout=60, what="host a to finish its batches",
                 pool=cut_off.pool)
        check(fleet, producer, job, survivor)
