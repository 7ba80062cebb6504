"""core.queries.iter_job_failures on a real SQLite file and a real PostgreSQL database: a job's failures only,
the reason filter (case-insensitive, LIKE wildcards taken literally), attempts and time, an unknown job."""

from __future__ import annotations

import pytest

from core.db import session_scope
from core.errors import NotFoundError
from core.jobs import create_job
from core.queries import count_job_failures, iter_job_failures
from core.results import Failure, record_failures, record_results
from core.tiles import Tile
from tests.factories import add_model, scored

pytestmark = pytest.mark.integration


def seed(url: str) -> tuple[int, int]:
    with session_scope(url) as session:
        model = add_model(session)
        job, other = create_job(session, model_hash=model).id, create_job(session, model_hash=model).id
        record_failures(session, model_hash=model, job_id=job, source_name="tiles", failures=[
            Failure(Tile(12, 1, 1, "12/1/1.jpg"), "Corrupt JPEG data: premature end"),
            Failure(Tile(12, 1, 2, "12/1/2.png"), "no such file"),
            Failure(Tile(None, None, None, "scans/a_b.png"), "format 100%_BMP is not allowed")])
        record_failures(session, model_hash=model, job_id=other, source_name="tiles",
                        failures=[Failure(Tile(12, 9, 9, "12/9/9.png"), "no such file")])
    with session_scope(url) as session:  # failed again: attempts count up, the reason is the latest
        record_failures(session, model_hash=model, job_id=job, source_name="tiles",
                        failures=[Failure(Tile(12, 1, 2, "12/1/2.png"), "permission denied")])
    return job, other


def test_a_jobs_failures_stream_with_reason_attempts_and_time(database_url: str) -> None:
    job, other = seed(database_url)
    with session_scope(database_url, read_only=True) as session:
        failures = list(iter_job_failures(session, job_id=job))
        assert [str(f.tile) for f in failures] == ["12/1/1", "12/1/2", "scans/a_b.png"]
        second = failures[1]
        assert (second.reason, second.attempts, second.job_id) == ("permission denied", 2, job)
        assert second.failed_at is not None and second.failed_at.tzinfo is not None
        document = failures[2].as_dict()
        assert document["tile"] is None and document["path"] == "scans/a_b.png" and document["z"] is None
        assert failures[0].as_dict()["failed_at"] == failures[0].failed_at.isoformat()  # type: ignore[union-attr]
        assert [f.tile for f in iter_job_failures(session, job_id=other)] == [Tile(12, 9, 9, "12/9/9.png")]


def test_the_reason_filter_ignores_case_and_takes_wildcards_literally(database_url: str) -> None:
    job, _ = seed(database_url)
    with session_scope(database_url, read_only=True) as session:
        assert [str(f.tile) for f in iter_job_failures(session, job_id=job, reason="corrupt")] == ["12/1/1"]
        assert [str(f.tile) for f in iter_job_failures(session, job_id=job, reason="100%_bmp")] == ["scans/a_b.png"]
        assert list(iter_job_failures(session, job_id=job, reason="100%x")) == []  # % is no wildcard
        assert count_job_failures(session, job_id=job) == 3
        assert count_job_failures(session, job_id=job, reason="PERMISSION") == 1


def test_a_classified_tile_leaves_the_list_and_an_unknown_job_is_refused_at_once(database_url: str) -> None:
    job, _ = seed(database_url)
    with session_scope(database_url) as session:
        model = add_model(session)
        record_results(session, model_hash=model, job_id=job, source_name="tiles",
                       results=[scored(12, 1, 1, "Forest", path="12/1/1.jpg")])
    with session_scope(database_url, read_only=True) as session:
        assert [str(f.tile) for f in iter_job_failures(session, job_id=job)] == ["12/1/2", "scans/a_b.png"]
        with pytest.raises(NotFoundError, match="job 99 does not exist"):
            iter_job_failures(session, job_id=99)  # raised by the call, before any row is read
