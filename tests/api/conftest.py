"""The HTTP server's fixtures: the seeded region (``tests.api.support``) in a real database, and a client of the
app through httpx (Starlette's TestClient) configured like ``tileclass serve``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.config import ServeConfig
from api.main import create_app
from tests.api.support import Region, seed


@pytest.fixture
def region(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Region:
    """The seeded region, on SQLite and on PostgreSQL (``database_url`` runs each test on both)."""
    from core.settings import get_settings

    monkeypatch.setenv("TILECLASS_DATABASE_URL", database_url)
    get_settings.cache_clear()
    return seed(database_url, tmp_path / "tiles")


@pytest.fixture
def sqlite_region(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Region:
    """The seeded region on SQLite only, for tests whose subject is not the database."""
    from core.settings import get_settings

    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    return seed(sqlite_url, tmp_path / "tiles")


def client_for(config: ServeConfig | None = None) -> TestClient:
    return TestClient(create_app(config or ServeConfig()))


@pytest.fixture
def client() -> Iterator[TestClient]:
    with client_for() as test_client:
        yield test_client
