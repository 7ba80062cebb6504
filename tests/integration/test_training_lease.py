"""A training run whose worker is killed mid-way: its lease expires, status shows it lost, resume sends it again.

Real Celery worker processes on Redis and PostgreSQL; the run is queued with ``tileclass train --queue``.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core import jobs
from core.db import session_scope
from core.schema import JobState
from core.settings import get_settings
from producer.cli import app
from tests.worker.support import running, start_celery, wait_for, worker_env
from tests.worker.test_training import image_folder

pytestmark = [pytest.mark.integration, pytest.mark.slow]
LEASE = 3  # seconds


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def shown_state(job_id: int) -> str:
    code, out = cli("status", str(job_id), "--json")
    assert code == 0, out
    return str(json.loads(out)["state"])


def test_a_killed_training_run_is_shown_lost_and_resume_trains_it_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, postgres_url: str) -> None:
    settings = {"database_url": postgres_url, "broker_url": redis_url, "model_dir": tmp_path / "models",
                "data_dir": tmp_path / "state", "train_lease_seconds": LEASE, "device": "cpu",
                "tile_roots": f'{{"work": "{tmp_path}"}}'}
    for key, value in settings.items():
        monkeypatch.setenv(f"TILECLASS_{key.upper()}", str(value))
    get_settings.cache_clear()
    env = worker_env(**settings)
    data = image_folder(tmp_path / "data")
    code, out = cli("train", str(data), "--queue", "--json", "--arch", "resnet18", "--epochs", "40", "--batch-size",
                    "8", "--image-size", "32", "--workers", "1", "--eval-every", "1")
    assert code == 0, out
    job = int(json.loads(out)["job_id"])
    first_log = tmp_path / "first.log"
    first = start_celery(env, cwd=tmp_path, name="trainer1", queues="train", log=first_log)
    with running(first):
        wait_for(lambda: shown_state(job) == JobState.RUNNING, timeout=120, what="the run to start",
                 logs=(first_log,), processes=(first,))
        code, out = cli("resume", str(job))  # a live run is not sent twice
        assert code == 2 and "its worker still renews its lease" in out, out
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    wait_for(lambda: shown_state(job) == "lost", timeout=30, what="the run to show as lost", logs=(first_log,))
    with session_scope() as session:
        assert jobs.get_job(session, job).state == JobState.RUNNING  # "lost" is read from the lease, not stored
    code, out = cli("resume", str(job), "--json")
    assert code == 0 and json.loads(out) == {"job_id": job, "state": "queued", "kind": "train"}, out
    second_log = tmp_path / "second.log"
    second = start_celery(env, cwd=tmp_path, name="trainer2", queues="train", log=second_log)
    with running(second):
        wait_for(lambda: shown_state(job) in (JobState.COMPLETED, JobState.FAILED), timeout=300,
                 what="the run sent again to finish", logs=(second_log,), processes=(second,))
    with session_scope() as session:
        finished = jobs.get_job(session, job)
        assert finished.state == JobState.COMPLETED, finished.message
        assert finished.model_hash is not None and finished.lease_owner is None
