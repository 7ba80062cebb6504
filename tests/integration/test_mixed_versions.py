"""Upgrading a deployment while messages wait in Redis: format 1 batches left by an older producer still run on a
new worker, and an older worker never runs a format 2 batch: it discards it unrun (recording nothing), and
``tileclass resume`` puts its tiles back once the workers are upgraded. Real Celery workers, Redis, SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from core import jobs
from core.celery_app import connected_app
from core.db import session_scope
from core.messages import CLASSIFY_TASK_V1
from core.schema import JobState, TileResult
from core.settings import get_settings
from producer.cli import app as cli
from tests.factories import folder_source
from tests.integration.test_worker_processes import deploy, job_state
from tests.worker.support import running, start_celery, tile_tree, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def results_of(job_id: int) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(TileResult).where(TileResult.job_id == job_id))
                   or 0)


def test_old_and_new_workers_and_messages_meet_without_a_wrong_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, sqlite_url: str) -> None:
    world = deploy(tmp_path, monkeypatch, database_url=sqlite_url, broker_url=redis_url)
    rows = tile_tree(world.root, 8)
    new_format = world.send_job([rows])  # format 2, as this version's producer sends it
    with session_scope() as session:
        jobs.job_row(session, new_format).model_hash = world.model_hash
    old_log = tmp_path / "old-worker.log"
    with running(start_celery(world.env, cwd=tmp_path, name="old", log=old_log,
                              app="tests.integration.format1_worker")) as old:
        wait_for(lambda: "unregistered task" in old_log.read_text(errors="replace"), timeout=60,
                 what="the format 1 worker to discard the format 2 batch", logs=(old_log,), processes=(old,))
    assert results_of(new_format) == 0 and job_state(new_format) == JobState.QUEUED

    # A format 1 batch an older producer left in the queue (other tiles): the new worker runs it like its own.
    older = tmp_path / "older-tiles"
    others = tile_tree(older, 8, y0=43000)
    with session_scope() as session:
        old_format = jobs.create_job(session, model_hash=world.model_hash,
                                     source=folder_source(older, name="older")).id
        jobs.record_batches_enqueued(session, job_id=old_format, batches=[(0, len(others))])
        jobs.finish_enqueue(session, job_id=old_format, total_tiles=len(others), total_batches=1, skipped=0)
    message = {"job_id": old_format, "seq": 0, "model_hash": world.model_hash, "root": "older",
               "tiles": [list(tile) for tile in others]}
    connected_app(get_settings()).send_task(CLASSIFY_TASK_V1, kwargs={"batch": message})

    new_log = tmp_path / "new-worker.log"
    with running(start_celery(world.env, cwd=tmp_path, name="new", log=new_log)) as new:
        resumed = CliRunner().invoke(cli, ["resume", str(new_format), "--json"])
        assert resumed.exit_code == 0, resumed.output
        assert json.loads(resumed.stdout)["enqueued"] == len(rows)
        for job in (new_format, old_format):
            wait_for(lambda job=job: job_state(job) == JobState.COMPLETED, timeout=120, what=f"job {job}",
                     logs=(new_log,), processes=(new,))
    assert results_of(old_format) == results_of(new_format) == len(rows)
