"""Bulk upserts of results and failures, on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import dispose_engines, session_scope
from core.migrate import upgrade
from core.models.lookups import find_model, list_models
from core.models.registry import register_model
from core.results import Failure, record_failures, record_results
from core.schema import FailedTile, TileResult
from core.tiles import Tile
from tests.factories import CLASSES, classified, grid, model_hash

pytestmark = pytest.mark.integration


def _register(url: str, seed: str = "model") -> str:
    digest = model_hash(seed)
    with session_scope(url) as session:
        register_model(session, model_hash=digest, arch="resnet18", class_names=CLASSES, image_size=64,
                       path=f"/models/{seed}.pt")
    return digest


def test_upserting_the_same_1000_tiles_twice_leaves_1000_rows(database_url: str) -> None:
    digest = _register(database_url)
    with session_scope(database_url) as session:
        assert record_results(session, source_name="root", model_hash=digest, job_id=None, results=grid(1000)) == 1000
    with session_scope(database_url) as session:
        record_results(session, source_name="root", model_hash=digest, job_id=None, results=grid(1000, label="River"))
    with session_scope(database_url) as session:
        assert find_model(session, ref=digest, count_results=True).results == 1000
        labels = set(session.scalars(select(TileResult.label)))
    assert labels == {"River"}


def test_a_batch_larger_than_one_statement_is_recorded_whole(database_url: str) -> None:
    digest = _register(database_url)
    with session_scope(database_url) as session:
        assert record_results(session, source_name="root", model_hash=digest, job_id=None, results=grid(7_000)) == 7_000
    with session_scope(database_url) as session:
        assert find_model(session, ref=digest, count_results=True).results == 7_000


def test_duplicate_keys_in_one_batch_keep_the_last(database_url: str) -> None:
    digest = _register(database_url)
    batch = [classified(5, 1, 1, label="Forest"), classified(5, 1, 1, label="River"), classified(5, 2, 1)]
    with session_scope(database_url) as session:
        assert record_results(session, source_name="root", model_hash=digest, job_id=None, results=batch) == 2
    with session_scope(database_url) as session:
        row = session.scalars(select(TileResult).where(TileResult.x == 1)).one()
    assert row.label == "River"
    assert row.probabilities["River"] == pytest.approx(0.8)


def test_tiles_without_coordinates_are_unique_by_root_and_path(database_url: str) -> None:
    digest = _register(database_url)
    plain = [classified(None, None, None, path=f"scans/{i}.jpg") for i in range(50)]
    for _ in range(2):
        with session_scope(database_url) as session:
            record_results(session, source_name="root", model_hash=digest, job_id=None, results=plain)
            record_results(session, source_name="other", model_hash=digest, job_id=None, results=plain)
    with session_scope(database_url) as session:
        assert find_model(session, ref=digest, count_results=True).results == 100


def test_each_model_keeps_its_own_row_per_tile(database_url: str) -> None:
    first, second = _register(database_url, "a"), _register(database_url, "b")
    for digest in (first, second):
        with session_scope(database_url) as session:
            record_results(session, source_name="root", model_hash=digest, job_id=None, results=grid(10))
    with session_scope(database_url) as session:
        assert sum(model.results or 0 for model in list_models(session)) == 20


def test_failures_count_attempts_and_are_cleared_by_a_result(database_url: str) -> None:
    digest = _register(database_url)
    tile = Tile(3, 1, 1, "3/1/1.png")
    for reason in ("truncated", "still truncated"):
        with session_scope(database_url) as session:
            record_failures(session, source_name="root", model_hash=digest, job_id=None,
                            failures=[Failure(tile, reason)])
    with session_scope(database_url) as session:
        failure = session.scalars(select(FailedTile)).one()
        assert (failure.attempts, failure.reason) == (2, "still truncated")
    with session_scope(database_url) as session:
        record_results(session, source_name="root", model_hash=digest, job_id=None,
                       results=[classified(3, 1, 1, path="3/1/1.png")])
    with session_scope(database_url) as session:
        assert session.scalar(select(func.count()).select_from(FailedTile)) == 0
        # A late failure for a tile that already has a result must not contradict it.
        record_failures(session, source_name="root", model_hash=digest, job_id=None, failures=[Failure(tile, "late")])
    with session_scope(database_url) as session:
        assert session.scalar(select(func.count()).select_from(FailedTile)) == 0


def _write_results(url: str, worker: int, count: int) -> None:
    dispose_engines()  # engines never cross a fork
    digest = model_hash()
    batch_size = 250
    for start in range(0, count, batch_size):
        batch = [
            classified(18, worker * 100_000 + i, 7, path=f"w{worker}/{i}.png") for i in range(start, start + batch_size)
        ]
        with session_scope(url) as session:
            record_results(session, source_name="root", model_hash=digest, job_id=None, results=batch)


def test_four_processes_write_40000_results_into_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    upgrade(url)
    _register(url)
    dispose_engines()
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_results, args=(url, worker, 10_000)) for worker in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=240)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]  # a "database is locked" error would exit 1
    with session_scope(url) as session:
        assert sum(model.results or 0 for model in list_models(session)) == 40_000
