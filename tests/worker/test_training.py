"""The train task's work, run in this process on a real SQLite file: job states, checkpoint, registration."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core import jobs
from core.db import session_scope
from core.messages import TrainRequest
from core.schema import JobKind, JobState, Model
from core.settings import get_settings
from tests.worker.support import EUROSAT
from worker.training import run_training

TINY = {"arch": "resnet18", "epochs": 1, "batch_size": 8, "image_size": 32, "workers": 1, "seed": 0}


def image_folder(target: Path, *, per_class: int = 8) -> Path:
    for name in ("Forest", "SeaLake"):
        (target / name).mkdir(parents=True)
        for i in range(1, per_class + 1):
            shutil.copyfile(EUROSAT / name / f"{name}_{i}.jpg", target / name / f"{name}_{i}.jpg")
    return target


@pytest.fixture
def train_job(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TILECLASS_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("TILECLASS_DEVICE", "cpu")
    monkeypatch.setenv("TILECLASS_TILE_ROOTS", f'{{"work": "{tmp_path}"}}')
    get_settings.cache_clear()
    with session_scope() as session:
        return jobs.create_job(session, kind=JobKind.TRAIN).id


@pytest.mark.slow
def test_training_registers_the_model_and_completes_the_job(train_job: int, tmp_path: Path) -> None:
    data = image_folder(tmp_path / "data")
    summary = run_training(TrainRequest(train_job, str(data), TINY), get_settings())
    with session_scope() as session:
        job = jobs.get_job(session, train_job)
        assert job.state == JobState.COMPLETED and job.finished_at is not None
        assert job.model_hash == summary["model_hash"]
        assert job.message is not None and "val accuracy" in job.message
        model = session.get(Model, job.model_hash)
        assert model is not None and model.class_names == ["Forest", "SeaLake"] and model.image_size == 32
    stored = tmp_path / "models" / f"{summary['model_hash']}.pt"
    assert stored.is_file() and Path(model.path) == stored.resolve()
    assert (tmp_path / "models" / f"train-job-{train_job}" / "model.pt").is_file()
    # A redelivered request for a completed job does not train again.
    assert run_training(TrainRequest(train_job, str(data), TINY), get_settings()) == {"skipped": "completed"}


def test_a_failing_run_marks_the_job_failed_in_one_line(train_job: int, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    summary = run_training(TrainRequest(train_job, str(tmp_path / "empty"), TINY), get_settings())
    with session_scope() as session:
        job = jobs.get_job(session, train_job)
        assert job.state == JobState.FAILED and job.model_hash is None
        assert job.message is not None and job.message.startswith("training failed: ") and "\n" not in job.message
        assert summary == {"failed": job.message.removeprefix("training failed: ")}


def test_unknown_training_options_fail_the_job(train_job: int, tmp_path: Path) -> None:
    run_training(TrainRequest(train_job, str(tmp_path), {"arch": "vit"}), get_settings())
    with session_scope() as session:
        message = jobs.get_job(session, train_job).message
    assert message == "training failed: unknown arch 'vit': choose one of resnet18, resnet34, resnet50, resnet101"


def test_a_request_naming_a_folder_outside_every_root_fails_its_job_without_reading_it(
        train_job: int, tmp_path: Path) -> None:
    for data_dir, config in [("/etc", TINY), (str(tmp_path / "data"), {**TINY, "weights": "/etc/passwd"}),
                             (str(tmp_path / "data"), {**TINY, "val_dir": "/etc"})]:
        summary = run_training(TrainRequest(train_job, data_dir, config), get_settings())
        assert "is not inside a tile root of this worker (TILECLASS_TILE_ROOTS: work=" in summary["failed"]
        with session_scope() as session:
            assert jobs.get_job(session, train_job).state == JobState.FAILED
