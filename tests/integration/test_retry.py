"""``tileclass failures`` and ``tileclass retry`` with a real `tileclass worker` process: on the embedded broker
with a SQLite file, and on Redis with PostgreSQL.

A job enqueued through the CLI fails two tiles (a truncated JPEG, a text file named .jpg); each is fixed on disk
and retried (first by --reason, then the rest) until the job ends classified with no failure left: ``status``
counts every tile once, the failed count drops to 0, the failure list empties, and a tile that fails again keeps
its place with one more attempt.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from core import jobs
from core.db import session_scope
from core.schema import JobBatch, JobKind, JobState
from core.settings import get_settings
from tests.conftest import EUROSAT
from tests.producer.conftest import cli
from tests.worker.support import running, start_launcher, tile_tree, tiny_checkpoint, wait_for, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOOD = EUROSAT / "Forest" / "Forest_7.jpg"


def status_of(job: int) -> dict[str, object]:
    result = cli("status", str(job), "--json")
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def finished(job: int) -> bool:
    with session_scope() as session:
        return jobs.get_job(session, job).state == JobState.COMPLETED


def failures_of(job: int, *extra: str) -> list[dict[str, object]]:
    result = cli("failures", str(job), "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


@pytest.fixture(params=["sqlite-embedded", "postgresql-redis"])
def services(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "sqlite-embedded":
        return {"database_url": str(request.getfixturevalue("sqlite_url")), "data_dir": str(tmp_path / "state")}
    return {"database_url": str(request.getfixturevalue("postgres_url")),
            "broker_url": str(request.getfixturevalue("redis_url"))}


def test_failed_tiles_fixed_on_disk_are_retried_until_the_job_is_all_classified(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, services: dict[str, str]) -> None:
    settings = {**services, "model_dir": str(tmp_path / "models")}
    for key, value in settings.items():
        monkeypatch.setenv(f"TILECLASS_{key.upper()}", value)
    get_settings.cache_clear()
    folder = tmp_path / "tiles"
    tile_tree(folder, 10)
    truncated, text = folder / "17/70000/42010.jpg", folder / "17/70001/42010.jpg"
    truncated.write_bytes(GOOD.read_bytes()[:300])
    text.write_bytes(b"not an image at all\n" * 10)
    checkpoint = tiny_checkpoint(tmp_path / "trained")
    log = tmp_path / "worker.log"
    launcher = start_launcher(["--device", "cpu", "--processes", "1", "--no-compile", "--batch-size", "8"],
                              worker_env(**settings), cwd=tmp_path, log=log)
    with running(launcher):
        def wait(condition: Callable[[], bool], *, what: str) -> None:
            wait_for(condition, timeout=120, what=what, logs=(log,), processes=(launcher,))

        enqueued = cli("enqueue", str(folder), "--model", str(checkpoint), "--batch-size", "5", "--json")
        assert enqueued.exit_code == 0, enqueued.output
        job = int(json.loads(enqueued.stdout)["job_id"])
        wait(lambda: finished(job), what="the job")
        first = status_of(job)
        assert (first["total"], first["classified"], first["failed"], first["pending"]) == (12, 10, 2, 0)

        listed = failures_of(job)
        assert {item["tile"]: item["attempts"] for item in listed} == {"17/70000/42010": 1, "17/70001/42010": 1}
        table = cli("failures", str(job))
        assert "17/70000/42010" in table.stdout and f"2 failed tiles of job {job}" in table.stdout, table.output
        rows = list(csv.DictReader(io.StringIO(cli("failures", str(job), "--format", "csv").stdout)))
        assert {row["path"] for row in rows} == {"17/70000/42010.jpg", "17/70001/42010.jpg"}
        reasons = {item["tile"]: str(item["reason"]) for item in listed}
        word = reasons["17/70000/42010"].split()[0]  # the truncated JPEG's reason, e.g. "truncated" or "corrupt"
        assert word.lower() not in reasons["17/70001/42010"].lower()

        nothing = cli("retry", str(job), "--reason", "no reason says this")
        assert nothing.exit_code == 0 and "nothing to retry" in nothing.stdout, nothing.output

        # Fix the truncated tile, retry only it: 11 classified, the other still failed, 12 tiles in all.
        truncated.write_bytes(GOOD.read_bytes())
        retried = cli("retry", str(job), "--reason", word.upper(), "--json")
        assert retried.exit_code == 0, retried.output
        assert json.loads(retried.stdout)["enqueued"] == 1
        wait(lambda: finished(job), what="the first retry")
        assert [item["tile"] for item in failures_of(job)] == ["17/70001/42010"]
        after = status_of(job)
        assert (after["state"], after["total"], after["classified"], after["failed"], after["pending"]) == (
            "completed", 12, 11, 1, 0)

        # Retried while still broken: it fails again, with one more attempt, and counts once.
        again = cli("retry", str(job))
        assert again.exit_code == 0 and "enqueued 1 failed tile again" in again.stdout, again.output
        wait(lambda: finished(job), what="the second retry")
        assert [(item["tile"], item["attempts"]) for item in failures_of(job)] == [("17/70001/42010", 2)]
        assert (status_of(job)["classified"], status_of(job)["failed"], status_of(job)["total"]) == (11, 1, 12)

        text.write_bytes(GOOD.read_bytes())
        assert cli("retry", str(job)).exit_code == 0
        wait(lambda: finished(job), what="the last retry")
        done = status_of(job)
        assert (done["state"], done["total"], done["classified"], done["failed"], done["pending"]) == (
            "completed", 12, 12, 0, 0)
        assert failures_of(job) == []
        assert f"job {job} has no failed tiles" in cli("failures", str(job)).stdout
        empty = cli("retry", str(job))
        assert empty.exit_code == 0 and f"job {job} has no failed tiles: nothing to retry" in empty.stdout
    with session_scope() as session:  # three retry batches, each of one tile, each counted as retried
        retry_rows = [(b.tiles, b.retried) for b in session.query(JobBatch).filter(JobBatch.job_id == job,
                                                                                  JobBatch.retried > 0)]
        assert retry_rows == [(1, 1)] * 3


def test_retry_refuses_what_it_cannot_retry(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    unknown = cli("retry", "41")
    assert unknown.exit_code == 2 and "job 41 does not exist" in unknown.output
    assert "Traceback" not in unknown.output and len(unknown.output.strip().splitlines()) == 1
    with session_scope() as session:
        training = jobs.create_job(session, kind=JobKind.TRAIN).id
    refused = cli("retry", str(training))
    assert refused.exit_code == 2 and "only classify jobs have tiles to retry" in refused.output
    assert cli("failures", "41").exit_code == 2
    bad_format = cli("failures", str(training), "--format", "xml")
    assert bad_format.exit_code == 2 and "choose table, csv or json" in bad_format.output
