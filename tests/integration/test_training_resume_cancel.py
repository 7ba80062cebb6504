"""Training that survives its worker, with real Celery worker processes on Redis and a SQLite file: a run killed
mid-way continues from its last epoch checkpoint when ``tileclass resume`` sends it again, and ``tileclass cancel``
stops it at the next epoch's end, leaving the best checkpoint so far on disk, unregistered."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import jobs
from core.db import session_scope
from core.schema import JobState, Model
from core.settings import get_settings
from model.epochs import epoch_files
from tests.integration.test_training_lease import cli, shown_state
from tests.worker.support import running, start_celery, wait_for, worker_env
from tests.worker.test_training import image_folder

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def last_epoch(folder: Path) -> int:
    files = epoch_files(folder)
    return int(files[-1].stem.split("-")[1]) if files else 0


def test_a_killed_run_continues_from_its_last_epoch_and_cancel_stops_it_unregistered(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, sqlite_url: str) -> None:
    settings = {"database_url": sqlite_url, "broker_url": redis_url, "model_dir": tmp_path / "models",
                "data_dir": tmp_path / "state", "train_lease_seconds": 3, "device": "cpu",
                "tile_roots": f'{{"work": "{tmp_path}"}}'}
    for key, value in settings.items():
        monkeypatch.setenv(f"TILECLASS_{key.upper()}", str(value))
    get_settings.cache_clear()
    env = worker_env(**settings)
    data = image_folder(tmp_path / "data")
    # Far more epochs than the test waits for: it ends by cancelling, never by the clock.
    code, out = cli("train", str(data), "--queue", "--json", "--epochs", "500", "--batch-size", "8", "--image-size",
                    "32", "--workers", "1", "--precision", "fp32", "--keep-epochs", "3", "--ema")
    assert code == 0, out
    job = int(json.loads(out)["job_id"])
    run_dir = tmp_path / "models" / f"train-job-{job}"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_celery(env, cwd=tmp_path, name="trainer1", queues="train", log=first_log)
    with running(first):
        wait_for(lambda: last_epoch(run_dir) >= 2, timeout=120, what="two epoch checkpoints",
                 logs=(first_log,), processes=(first,))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    killed_after = last_epoch(run_dir)
    assert len(epoch_files(run_dir)) <= 3  # --keep-epochs
    wait_for(lambda: shown_state(job) == "lost", timeout=30, what="the run to show as lost", logs=(first_log,))
    code, out = cli("resume", str(job))
    assert code == 0 and "sent again" in out, out
    second = start_celery(env, cwd=tmp_path, name="trainer2", queues="train", log=second_log)
    with running(second):
        wait_for(lambda: last_epoch(run_dir) > killed_after, timeout=120, what="the run to continue",
                 logs=(second_log,), processes=(second,))
        code, out = cli("cancel", str(job))
        assert code == 0, out
        assert f"training job {job} cancelled: its worker stops it at the end of the current epoch" in out
        assert str(run_dir / "model.pt") in out
        wait_for(lambda: "not registered" in (_message(job) or ""), timeout=120, what="the run to stop",
                 logs=(second_log,), processes=(second,))
    assert shown_state(job) == JobState.CANCELLED
    message = _message(job)
    assert message is not None and "the best checkpoint so far (epoch " in message
    assert str((run_dir / "model.pt").resolve()) in message
    assert (run_dir / "model.pt").is_file() and (run_dir / "model.json").is_file()
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Model)) == 0  # not registered
        assert jobs.get_job(session, job).lease_owner is None
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # The second run started from the epoch the first one had saved last, and carried its history on.
    assert metrics["resumed_from_epoch"] == killed_after and metrics["stopped_early"] is True
    epochs = [entry["epoch"] for entry in metrics["epochs"]]
    assert epochs == list(range(1, len(epochs) + 1)) and epochs[-1] > killed_after
    assert metrics["ema"] is True


def _message(job_id: int) -> str | None:
    with session_scope() as session:
        return jobs.get_job(session, job_id).message
