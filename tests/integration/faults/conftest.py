"""Fixtures of the fault suite: one deployment (private Redis, PostgreSQL database, worker pool, tile region) shared
by the package's tests, and per test a fresh model hash, so that each scenario's results are its own.

Starting the workers once for the package keeps the suite within minutes on two cores: each scenario begins by
restarting whatever an earlier one killed and waiting until the broker is empty.
"""

from __future__ import annotations

import json
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
    make_region,
    private_database,
    reference_labels,
    scenario_model,
    wait_for,
    worker_env,
)

REGION_TILES = 240
BATCH = 12  # tiles per message: 20 batches per job
TILE_DELAY = 0.02  # seconds per tile read in the workers: a batch lasts long enough to be hit mid-way


@dataclass
class Deployment:
    folder: Path
    redis: PrivateRedis
    database_url: str
    settings: dict[str, str]  # TILECLASS_* of this deployment, for the test process and the workers
    pool: WorkerPool
    root: Path
    rows: list[Tile]
    reference: dict[tuple[int, int, int], str]
    checkpoint: Path


@dataclass
class World:
    """One scenario: the deployment, the model registered for it, and helpers to run the CLI."""

    deployment: Deployment
    model_hash: str

    @property
    def pool(self) -> WorkerPool:
        return self.deployment.pool

    @property
    def redis(self) -> PrivateRedis:
        return self.deployment.redis

    def cli(self, *args: str) -> str:
        """Run ``tileclass ARGS`` in this process; returns stdout, failing with the output on a non-zero exit."""
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == 0, f"tileclass {' '.join(args)} exited {result.exit_code}: {result.output}"
        return result.stdout

    def enqueue(self, *extra: str, root: Path | None = None) -> int:
        out = self.cli("enqueue", str(root or self.deployment.root), "--model", self.model_hash, "--batch-size",
                       str(BATCH), "--max-queued", "1000", "--json", *extra)
        return int(json.loads(out)["job_id"])

    def check(self, job_ids: list[int], *, rows: list[Tile] | None = None,
              reference: dict[tuple[int, int, int], str] | None = None, failed: tuple[str, ...] = (),
              recounted: int = 0) -> None:
        from tests.integration.faults.harness import check_invariants

        check_invariants(model_hash=self.model_hash, job_ids=job_ids, rows=rows or self.deployment.rows,
                         reference=reference or self.deployment.reference, redis_server=self.redis,
                         pool=self.pool, failed=failed, recounted=recounted)


@pytest.fixture(scope="package")
def private_postgres() -> Iterator[str]:
    """A migrated PostgreSQL database for the whole package (the workers keep its URL), dropped afterwards."""
    with private_database("tileclass_faults") as url:
        yield url


@pytest.fixture(scope="package")
def deployment(tmp_path_factory: pytest.TempPathFactory, trained_checkpoint: Path,
               private_postgres: str) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("faults")
    server = PrivateRedis(folder / "redis")
    server.start()
    settings = {"TILECLASS_DATABASE_URL": private_postgres, "TILECLASS_BROKER_URL": server.url,
                "TILECLASS_MODEL_DIR": str(folder / "models"), "TILECLASS_DATA_DIR": str(folder / "state"),
                "TILECLASS_VISIBILITY_TIMEOUT": str(VISIBILITY), "TILECLASS_WORKER_BATCH_SIZE": "4",
                "TILECLASS_WORKER_DECODE_THREADS": "1", "TILECLASS_WORKER_MAX_RETRIES": "1"}
    env = worker_env(settings, state=folder / "hooks-state", tile_delay=TILE_DELAY)
    pool = WorkerPool(env, folder=folder, count=2)
    try:
        pool.start()
        root = folder / "tiles"
        rows = make_region(root, REGION_TILES)
        reference = reference_labels(trained_checkpoint, root, rows)
        yield Deployment(folder, server, private_postgres, settings, pool, root, rows, reference, trained_checkpoint)
    finally:
        pool.stop()
        server.stop()


@pytest.fixture
def world(deployment: Deployment, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> World:
    """The deployment made whole again (Redis up, every worker running, the broker empty) and a model of its own."""
    for key, value in deployment.settings.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    if deployment.redis.process is None or deployment.redis.process.poll() is not None:
        deployment.redis.start()
    deployment.pool.supervise()
    deployment.pool.wait_ready()
    wait_for(lambda: deployment.redis.queued() == (0, 0), timeout=60, what="the broker to be empty",
             pool=deployment.pool)
    name = request.node.name.removeprefix("test_")[:60]
    checkpoint = scenario_model(deployment.checkpoint, deployment.folder / "scenario-models", name)
    with session_scope() as session:
        model_hash = register_checkpoint(session, checkpoint=checkpoint, settings=get_settings()).hash
    return World(deployment, model_hash)
