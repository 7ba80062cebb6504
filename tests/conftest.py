"""Shared fixtures: settings isolation, a SQLite file, and fresh databases on the local PostgreSQL and Redis.

The local services are real (127.0.0.1:5432 and :6379); when one is unreachable the tests that need it fail with
the reason, never skip. ``make test`` starts them first when they are down (scripts/services.sh).
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_ADMIN_URL = os.environ.get("TILECLASS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TILECLASS_TEST_REDIS", "redis://127.0.0.1:6379")
REPO_ROOT = Path(__file__).resolve().parent.parent


def require_port(service: str, port: int) -> None:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
    except OSError as exc:
        pytest.fail(f"{service} is unreachable at 127.0.0.1:{port} ({exc}); start it with scripts/services.sh")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run where CUDA is; elsewhere they are deselected (pytest's summary counts them), not
    skipped, so that on a GPU host a missing feature fails them."""
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu:
        return
    import torch

    if not torch.cuda.is_available():
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if item.get_closest_marker("gpu") is None]


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test runs in its own folder with no TILECLASS_* variables from the outside."""
    from core.db import dispose_engines
    from core.settings import get_settings

    for name in list(os.environ):
        if name.startswith("TILECLASS_") and not name.startswith("TILECLASS_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    dispose_engines()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    from core.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'results.db'}"
    upgrade(url)
    return url


@contextlib.contextmanager
def fresh_postgres_database(prefix: str = "tileclass_test", *, migrate: bool = True) -> Iterator[str]:
    """A new PostgreSQL database on the local server (migrated to the head unless ``migrate`` is false), dropped
    (with its connections) afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from core.db import dispose_engines
    from core.migrate import upgrade

    require_port("PostgreSQL", 5432)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, dropped afterwards."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each write test runs against both dialects."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def redis_url() -> Iterator[str]:
    """An emptied Redis database number chosen per test run (``TILECLASS_TEST_REDIS_DB``, else 9 + the xdist worker
    number); emptied again afterwards."""
    import redis

    require_port("Redis", 6379)
    # TILECLASS_TEST_REDIS_DB lets test runs that share one Redis (several checkouts, several developers) keep
    # apart: each flushes only its own database number.
    number = os.environ.get("TILECLASS_TEST_REDIS_DB") or 9 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
    url = f"{REDIS_URL}/{number}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


# The fixed subset of real EuroSAT patches the tests use, committed with its licence (see its README.md); the
# benchmarks read the full set (bench/eurosat.py).
EUROSAT = REPO_ROOT / "tests" / "fixtures" / "eurosat-rgb"
SUBSET_CLASSES = ("Forest", "Highway", "Residential", "SeaLake")


def copy_eurosat_subset(target: Path, *, per_class: int, first: int = 1,
                        classes: tuple[str, ...] = SUBSET_CLASSES) -> Path:
    """Copy the fixed files ``<Class>_<first..first+per_class-1>.jpg`` of ``classes`` into ``target``/<Class>/."""
    import shutil

    for name in classes:
        folder = target / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(first, first + per_class):
            shutil.copyfile(EUROSAT / name / f"{name}_{index}.jpg", folder / f"{name}_{index}.jpg")
    return target


@pytest.fixture(scope="session")
def eurosat_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fixed ImageFolder subset of real EuroSAT patches: 4 classes x 80 images (64x64 JPEG), read-only by use."""
    return copy_eurosat_subset(tmp_path_factory.mktemp("eurosat") / "subset", per_class=80)


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory, eurosat_subset: Path) -> Path:
    """A tiny ResNet18 trained from scratch on ``eurosat_subset`` once per session (about 20 s on 2 cores).

    About 80% accurate on held-out images of its 4 classes; the checkpoint has its sidecar JSON beside it.
    """
    import torch

    from model.train import TrainConfig, fit

    torch.set_num_threads(min(2, torch.get_num_threads()))
    config = TrainConfig(arch="resnet18", weights="none", epochs=6, batch_size=32, lr=0.05, seed=0)
    result = fit(config, data_dir=eurosat_subset, out_dir=tmp_path_factory.mktemp("trained"), progress=False)
    return result.checkpoint
