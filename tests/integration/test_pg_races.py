"""Result and failure bookkeeping under concurrent writers on PostgreSQL (real transactions in real threads)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from core.db import session_scope
from core.models.registry import register_model
from core.results import Failure, record_failures, record_results
from core.schema import FailedTile, TileResult
from tests.factories import CLASSES, classified, model_hash

pytestmark = pytest.mark.integration


def _register(url: str) -> str:
    digest = model_hash("races")
    with session_scope(url) as session:
        register_model(session, model_hash=digest, arch="resnet18", class_names=CLASSES, image_size=64,
                       path="/models/races.pt")
    return digest


def test_a_failure_written_while_a_success_is_in_flight_does_not_leave_both(postgres_url: str) -> None:
    digest = _register(postgres_url)
    success = classified(17, 5, 6)
    failed_late: list[BaseException] = []

    def fail_it() -> None:
        try:
            with session_scope(postgres_url) as session:
                record_failures(session, model_hash=digest, job_id=None, source_name="root",
                                failures=[Failure(success.tile, "unreadable on the other worker")])
        except BaseException as exc:  # asserted below
            failed_late.append(exc)

    with session_scope(postgres_url) as session:
        record_results(session, model_hash=digest, job_id=None, source_name="root", results=[success])
        other = threading.Thread(target=fail_it)
        other.start()
        other.join(timeout=3)  # it waits for this transaction (or, unprotected, commits its row meanwhile)
    other.join(timeout=60)
    assert not other.is_alive() and not failed_late, failed_late
    with session_scope(postgres_url) as session:
        assert session.scalar(select(func.count()).select_from(TileResult)) == 1
        assert session.scalar(select(func.count()).select_from(FailedTile)) == 0  # never both


def test_a_batch_naming_one_path_twice_records_without_a_cardinality_error(postgres_url: str) -> None:
    digest = _register(postgres_url)
    twice_same = [classified(17, 1, 1, path="a.png"), classified(17, 1, 1, path="a.png", label="River")]
    twice_moved = [classified(17, 2, 2, path="b.png"), classified(17, 3, 3, path="b.png")]
    with session_scope(postgres_url) as session:
        record_results(session, model_hash=digest, job_id=None, source_name="root", results=twice_same + twice_moved)
        record_failures(session, model_hash=digest, job_id=None, source_name="root",
                        failures=[Failure(classified(17, 9, 9, path="c.png").tile, "x")] * 2)
    with session_scope(postgres_url) as session:
        rows = sorted(session.execute(select(TileResult.x, TileResult.label)).all())
        assert rows == [(1, "River"), (2, "Forest"), (3, "Forest")]
        assert session.scalar(select(func.count()).select_from(FailedTile)) == 1
