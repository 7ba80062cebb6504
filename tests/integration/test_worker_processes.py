"""Real `tileclass worker` processes on Redis + PostgreSQL, and on the embedded broker with a SQLite file.

Batches are sent straight to the broker (core.messages' contract), as the producer does, and the test waits (with a
bound) for the workers to record them.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import jobs
from core.celery_app import connected_app, queued_messages
from core.db import session_scope
from core.messages import CLASSIFY_TASK, TRAIN_TASK, ClassifyBatch, TrainRequest
from core.models.registry import register_checkpoint
from core.schema import FailedTile, JobKind, JobState, Model, TileResult
from core.settings import get_settings
from core.tiles import Tile
from tests.factories import folder_source
from tests.worker.support import (
    broken_tiles,
    running,
    start_launcher,
    tile_tree,
    tiny_checkpoint,
    wait_for,
    worker_env,
)
from tests.worker.test_training import TINY, image_folder

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Deployment:
    """One test's services and folders, seen both by the test (monkeypatched env) and by the workers (env)."""

    env: dict[str, str]
    root: Path
    model_hash: str

    def send_job(self, batches: list[list[Tile]], *, model_hash: str | None = None) -> int:
        """Create a job, record and send its batches and finish the enqueue, as the producer does (a worker runs only
        batches its job handed out)."""
        app = connected_app(get_settings())
        with session_scope() as session:
            job_id = jobs.create_job(session, model_hash=self.model_hash,
                                     source=folder_source(self.root, name="tiles")).id
            jobs.record_batches_enqueued(session, job_id=job_id, batches=[(seq, len(rows))
                                                                          for seq, rows in enumerate(batches)])
        for seq, rows in enumerate(batches):
            message = ClassifyBatch(job_id, seq, model_hash or self.model_hash, "tiles", rows).to_message()
            app.send_task(CLASSIFY_TASK, kwargs={"batch": message})
        with session_scope() as session:
            jobs.finish_enqueue(session, job_id=job_id, total_tiles=sum(map(len, batches)),
                                total_batches=len(batches), skipped=0)
        return job_id


def deploy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **services: str) -> Deployment:
    settings = {"model_dir": tmp_path / "models", "data_dir": tmp_path / "state",
                "tile_roots": f'{{"work": "{tmp_path}"}}', **services}
    env = worker_env(**settings)
    for key, value in settings.items():
        monkeypatch.setenv(f"TILECLASS_{key.upper()}", str(value))
    get_settings.cache_clear()
    with session_scope() as session:
        model_hash = register_checkpoint(session, checkpoint=tiny_checkpoint(tmp_path / "trained"),
                                         settings=get_settings()).hash
    return Deployment(env, tmp_path / "tiles", model_hash)


def job_state(job_id: int) -> str:
    with session_scope() as session:
        return jobs.get_job(session, job_id).state


def test_workers_on_redis_and_postgresql_classify_fail_bad_tiles_alone_and_train(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, postgres_url: str) -> None:
    world = deploy(tmp_path, monkeypatch, database_url=postgres_url, broker_url=redis_url)
    good = tile_tree(world.root, 30)
    broken = broken_tiles(world.root)
    escaping = Tile(None, None, None, "../../../etc/passwd")
    log = tmp_path / "workers.log"
    launcher = start_launcher(["--device", "cpu", "--processes", "2", "--threads-per-process", "1", "--no-compile",
                               "--queues", "classify,train", "--batch-size", "8"], world.env, cwd=tmp_path, log=log)
    with running(launcher):
        job = world.send_job([good[:10], [*good[10:15], *broken, *good[15:20]], [good[20], escaping, *good[21:]]])
        ghost = world.send_job([good[:3]], model_hash="e" * 64)  # a message naming another model than its job
        train_job = _send_training(tmp_path)
        for job_id in (job, train_job):
            wait_for(lambda j=job_id: job_state(j) in (JobState.COMPLETED, JobState.FAILED), timeout=150,
                     what=f"job {job_id} to finish", logs=(log,), processes=(launcher,))
        wait_for(lambda: f"dropping batch 0 of job {ghost}: the message names model eeeeeeeeeeee" in log.read_text(),
                 timeout=60, what="the mismatched message to be dropped", logs=(log,), processes=(launcher,))
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=60) == 0, log.read_text()[-3000:]
    output = log.read_text()
    assert "cpu0@" in output and "cpu1@" in output  # one Celery node per process, named after its slot

    with session_scope() as session:
        classified = {(r.z, r.x, r.y) for r in session.scalars(select(TileResult).where(TileResult.job_id == job))}
        assert classified == {row[:3] for row in good}
        reasons = {f.path: f.reason for f in session.scalars(select(FailedTile).where(FailedTile.job_id == job))}
        assert "not a plain path inside its root" in reasons.pop(escaping[3])
        assert {path: word in reasons[path] for (_, _, _, path), word in broken.items()} == {
            row[3]: True for row in broken}
        assert len(reasons) == len(broken)
        done = jobs.progress(session, job_id=job)
        assert (done.state, done.classified, done.failed, done.batches_done) == (
            JobState.COMPLETED, 30, len(broken) + 1, 3)
        lost = jobs.progress(session, job_id=ghost)
        assert (lost.state, lost.classified, lost.failed) == (JobState.QUEUED, 0, 0)  # no tile failed for it
        assert session.scalar(select(func.count()).select_from(TileResult).where(TileResult.job_id == ghost)) == 0
        trained = jobs.get_job(session, train_job)
        assert trained.state == JobState.COMPLETED, trained.message
        assert trained.model_hash is not None and session.get(Model, trained.model_hash) is not None
        assert (tmp_path / "models" / f"{trained.model_hash}.pt").is_file()
    assert queued_messages("classify", connected_app(get_settings())) == 0


def _send_training(tmp_path: Path) -> int:
    data = image_folder(tmp_path / "train-data")
    with session_scope() as session:
        job_id = jobs.create_job(session, kind=JobKind.TRAIN).id
        jobs.set_state(session, job_ids=[job_id], state=JobState.QUEUED)
    request = TrainRequest(job_id, str(data), TINY).to_message()
    connected_app(get_settings()).send_task(TRAIN_TASK, kwargs={"request": request})
    return job_id


def test_one_worker_on_the_embedded_broker_and_a_sqlite_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    world = deploy(tmp_path, monkeypatch, database_url=sqlite_url)
    assert get_settings().is_embedded_broker
    rows = tile_tree(world.root, 12)
    job = world.send_job([rows[:6], rows[6:]])
    log = tmp_path / "worker.log"
    launcher = start_launcher(["--device", "cpu", "--processes", "1"], world.env, cwd=tmp_path, log=log)
    with running(launcher):
        wait_for(lambda: job_state(job) == JobState.COMPLETED, timeout=120, what="the job to complete", logs=(log,),
                 processes=(launcher,))
        launcher.send_signal(signal.SIGINT)  # Ctrl-C: warm shutdown, exit 0
        assert launcher.wait(timeout=60) == 0
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(TileResult)) == 12
        assert jobs.progress(session, job_id=job).classified == 12
