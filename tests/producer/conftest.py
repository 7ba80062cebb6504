"""A deployment for producer tests: database + broker settings, a registered model, tile trees, and a stand-in
worker that consumes the real broker's messages with kombu and records them with the worker's own recording."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from core.celery_app import connected_app
from core.db import session_scope
from core.messages import CLASSIFY_QUEUE, CLASSIFY_TASK, ClassifyBatch
from core.models.registry import register_model
from core.results import Classified
from core.settings import get_settings, load_settings
from tests.conftest import REPO_ROOT
from tests.factories import CLASSES, model_hash

MODEL = model_hash("enqueue-tests")


@dataclass
class Deployment:
    database_url: str
    broker_url: str
    model: str = MODEL

    def app(self) -> Any:
        return connected_app(load_settings())

    def env(self) -> dict[str, str]:
        return {**os.environ, "TILECLASS_DATABASE_URL": self.database_url, "TILECLASS_BROKER_URL": self.broker_url}


def deploy(monkeypatch: pytest.MonkeyPatch, database_url: str, broker_url: str) -> Deployment:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", database_url)
    monkeypatch.setenv("TILECLASS_BROKER_URL", broker_url)
    get_settings.cache_clear()
    with session_scope(database_url) as session:
        register_model(session, model_hash=MODEL, arch="resnet18", class_names=CLASSES, image_size=64, path="/m.pt")
    return Deployment(database_url, broker_url)


@pytest.fixture
def on_redis(sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    return deploy(monkeypatch, sqlite_url, redis_url)


@pytest.fixture
def embedded(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    return deploy(monkeypatch, sqlite_url, "filesystem://")


def make_tree(root: Path, relpaths: Iterable[str]) -> list[str]:
    relpaths = list(relpaths)
    for rel in relpaths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x89PNG")
    return relpaths


def xyz(zoom: int, xs: Iterable[int], ys: Iterable[int], ext: str = "png") -> list[str]:
    ys = list(ys)
    return [f"{zoom}/{x}/{y}.{ext}" for x in xs for y in ys]


def cli(*args: str) -> Result:
    from producer.cli import app

    return CliRunner().invoke(app, [str(arg) for arg in args])


def tileclass(*args: str, deployment: Deployment, cwd: Path, **popen: Any) -> subprocess.Popen[str]:
    """The real command line in its own process (for signals, kills and waiting on the broker)."""
    code = "import sys; sys.path.insert(0, sys.argv.pop(1)); from producer.cli import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, str(REPO_ROOT), *map(str, args)], cwd=cwd,
                            env=deployment.env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def consume(app: Any, *, limit: int | None = None, timeout: float = 0.3) -> list[dict[str, Any]]:
    """Take (and acknowledge) up to ``limit`` classify batches from the broker, as the task would receive them."""
    batches: list[dict[str, Any]] = []
    with app.connection_for_read() as connection:
        queue = connection.SimpleQueue(app.amqp.queues[CLASSIFY_QUEUE], accept=["json"])
        try:
            while limit is None or len(batches) < limit:
                try:
                    message = queue.get(block=True, timeout=timeout)
                except queue.Empty:
                    break
                assert message.headers["task"] == CLASSIFY_TASK
                args, kwargs, _ = message.payload
                assert args == [] and set(kwargs) == {"batch"}
                batches.append(kwargs["batch"])
                message.ack()
        finally:
            queue.close()
    return batches


def classify(batches: Iterable[dict[str, Any]]) -> None:
    """Do what a worker does with each batch, through the worker's own recording: a result per tile, the batch
    marked done, the job's state refreshed."""
    from worker.recording import BatchOutcome, record_outcome

    for message in batches:
        batch = ClassifyBatch.from_message(message)
        outcome = BatchOutcome([Classified(tile, "Forest", 0.9, dict.fromkeys(CLASSES, 0.3)) for tile in batch.tiles])
        record_outcome(batch, outcome, model_registered=True)


def tiles_in(batches: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(row) for batch in batches for row in batch["tiles"]]
