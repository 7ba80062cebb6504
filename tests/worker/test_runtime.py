"""Per-process runtime: the model cache and the database retry policy."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from core.db import session_scope
from core.errors import HostError
from core.settings import load_settings
from core.sidecar import file_sha256
from core.tiles import Tile
from tests.worker.support import eurosat_files, tiny_checkpoint
from worker.pipeline import TileFile, classify_tiles
from worker.runtime import ModelCache, load_classifier, with_db_retry


def test_cache_loads_each_model_once_and_drops_the_least_recently_used() -> None:
    loads: list[str] = []

    def loader(model_hash: str, path: Path) -> Any:
        loads.append(model_hash)
        return f"model {model_hash} from {path.name}"

    cache = ModelCache(2, loader)
    assert cache.get("a", lambda: Path("a.pt")) == "model a from a.pt"
    cache.get("b", lambda: Path("b.pt"))
    cache.get("a", lambda: Path("never read: a is loaded"))
    cache.get("c", lambda: Path("c.pt"))  # evicts b, the least recently used
    assert "a" in cache and "c" in cache and "b" not in cache
    cache.get("b", lambda: Path("b.pt"))
    assert loads == ["a", "b", "c", "b"]


def test_a_checkpoint_whose_hash_differs_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_DEVICE", "cpu")
    monkeypatch.setenv("TILECLASS_WORKER_COMPILE", "false")
    checkpoint = tiny_checkpoint(tmp_path)
    with pytest.raises(HostError, match=r"model 000000000000 refused on this host: .*expected 000000000000"):
        load_classifier("0" * 64, checkpoint, load_settings())


@pytest.mark.slow
def test_an_int8_worker_quantizes_models_with_quantization_images_and_runs_older_ones_in_float(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    for name, value in {"DEVICE": "cpu", "WORKER_PRECISION": "int8", "WORKER_BATCH_SIZE": "4"}.items():
        monkeypatch.setenv(f"TILECLASS_{name}", value)
    settings = load_settings()
    quantizable = tiny_checkpoint(tmp_path, quantization_images=12)
    classifier = load_classifier(file_sha256(quantizable), quantizable, settings)
    assert (classifier.precision, classifier.compiled, classifier.batch_size) == ("int8", True, 4)
    files = eurosat_files(6)  # 6 tiles in chunks of 4: the second chunk is padded and the padding dropped
    with ThreadPoolExecutor(2) as pool:
        outcome = classify_tiles(classifier, [TileFile(Tile(None, None, None, str(f)), f) for f in files], chunk_size=4,
                                 pool=pool)
    assert not outcome.failures and [c.tile.path for c in outcome.classified] == [str(f) for f in files]

    older = tiny_checkpoint(tmp_path, seed=1)  # as saved before checkpoints kept quantization images
    with caplog.at_level(logging.WARNING):
        fallback = load_classifier(file_sha256(older), older, settings)
    assert fallback.precision in ("bf16", "fp32")
    assert "no quantization images" in caplog.text and "running it at precision auto instead" in caplog.text


def _operational() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


def test_transient_database_errors_are_retried_with_growing_delays() -> None:
    calls, delays = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _operational()
        return "written"

    assert with_db_retry(flaky, what="test", sleep=delays.append) == "written"
    assert len(calls) == 3 and len(delays) == 2 and delays[1] > delays[0] > 0


def test_retries_are_bounded_and_other_errors_are_not_retried() -> None:
    delays: list[float] = []

    def down() -> None:
        raise _operational()

    with pytest.raises(OperationalError):
        with_db_retry(down, what="test", attempts=4, sleep=delays.append)
    assert len(delays) == 3

    def broken() -> None:
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        with_db_retry(broken, what="test", sleep=delays.append)
    assert len(delays) == 3


@pytest.mark.integration
def test_a_dropped_postgresql_connection_is_retried(postgres_url: str) -> None:
    """The server ends the session's connection mid-transaction (as a restart would): the step runs again."""
    attempts: list[int] = []

    def step() -> int:
        with session_scope(postgres_url) as session:
            attempts.append(1)
            if len(attempts) == 1:
                session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
            return int(session.execute(text("SELECT 42")).scalar_one())

    assert with_db_retry(step, what="test", sleep=lambda _: None) == 42
    assert len(attempts) == 2
