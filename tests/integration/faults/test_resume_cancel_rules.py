"""The rules of `tileclass resume` and `tileclass cancel`, on both database dialects, without worker processes:
which jobs they accept, and how a superseded batch is kept from being counted twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from core import jobs
from core.db import session_scope
from core.results import Classified, record_results
from core.schema import BatchState, JobBatch, JobKind, JobState
from core.settings import get_settings
from core.tiles import Tile
from producer.cli import app
from tests.factories import add_model, folder_source
from tests.integration.faults.harness import make_region

pytestmark = pytest.mark.integration


@pytest.fixture
def deployment(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", database_url)
    monkeypatch.setenv("TILECLASS_DATA_DIR", str(tmp_path / "state"))  # the embedded broker, in a folder
    get_settings.cache_clear()
    with session_scope() as session:
        return add_model(session, "rules")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def enqueued_job(model: str, root: Path, *, batches: list[int], done: int = 0) -> int:
    """A classify job over ``root`` whose enqueue finished, with ``done`` of its batches done."""
    with session_scope() as session:
        job = jobs.create_job(session, model_hash=model, source=folder_source(root, name="tiles")).id
        jobs.record_batches_enqueued(session, job_id=job, batches=list(enumerate(batches)))
        for seq in range(done):
            jobs.record_batch_done(session, job_id=job, seq=seq, tiles=batches[seq], classified=batches[seq],
                                   failed=0)
        jobs.finish_enqueue(session, job_id=job, total_tiles=sum(batches), total_batches=len(batches), skipped=0)
    return job


def test_resume_and_cancel_refuse_what_they_cannot_do_in_one_line(deployment: str, tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    make_region(root, 4)
    with session_scope() as session:
        train = jobs.create_job(session, kind=JobKind.TRAIN).id
        # Its producer never finished:
        producing = jobs.create_job(session, model_hash=deployment, source=folder_source(root, name="tiles")).id
    finished = enqueued_job(deployment, root, batches=[2], done=1)
    cases = {
        ("resume", "999"): "job 999 does not exist",
        ("resume", str(train)): "only a lost training job can be resumed",
        ("resume", str(producing)): "run the same 'tileclass enqueue' command again",
        ("cancel", str(finished), "999"): "job 999 does not exist",
        ("cancel", str(finished)): f"job {finished} is completed",
    }
    for args, words in cases.items():
        code, out, err = run(*args)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (args, err)
        assert words in err, (args, err)
    code, out, _ = run("cancel", str(producing), str(train), "--json")
    assert code == 0 and [row["state"] for row in json.loads(out)] == ["cancelled", "cancelled"]
    code, _, err = run("resume", str(producing))
    assert code == 2 and "is cancelled" in err
    code, out, _ = run("cancel", str(producing))
    assert code == 0 and "already cancelled" in out


def test_a_superseded_batch_that_runs_after_all_is_not_counted_twice(deployment: str, tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    rows = make_region(root, 6)
    job = enqueued_job(deployment, root, batches=[3, 3], done=1)  # batch 1 "lost" with the broker
    code, out, _ = run("resume", str(job), "--batch-size", "6", "--json")
    report = json.loads(out)
    assert code == 0 and (report["found"], report["enqueued"], report["superseded_batches"]) == (6, 6, 1)
    # Batch 0's tiles have no results in this test, so they are enqueued again too; its done row still counts 3.
    with session_scope() as session:
        # The lost batch turns up after all and runs: its row stays superseded.
        jobs.record_batch_done(session, job_id=job, seq=1, tiles=3, classified=3, failed=0)
        states = dict(session.execute(select(JobBatch.seq, JobBatch.state).where(JobBatch.job_id == job)).all())
        assert states[1] == BatchState.CANCELLED
        assert jobs.progress(session, job_id=job).classified == 3  # batch 0 only: the resumed batch is pending
        new_seq = max(states)
        keys = [Tile(*r[:3], r[3]) for r in rows]
        record_results(session, source_name="root", model_hash=deployment, job_id=job,
                       results=[Classified(k, "Forest", 0.9, {"Forest": 0.9}) for k in keys])
        jobs.record_batch_done(session, job_id=job, seq=new_seq, tiles=6, classified=6, failed=0)
        assert jobs.refresh_state(session, job_id=job) == JobState.COMPLETED
        done = jobs.progress(session, job_id=job)
        assert (done.total, done.classified) == (9, 9)  # batch 0 (3) + the resumed batch (6); never batch 1


def test_resume_with_nothing_missing_completes_a_job_stuck_on_a_lost_batch(deployment: str, tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    rows = make_region(root, 4)
    job = enqueued_job(deployment, root, batches=[2, 2], done=1)
    with session_scope() as session:  # every tile got classified (another job over the same tiles, say)
        record_results(session, source_name="root", model_hash=deployment, job_id=None, results=[
            Classified(Tile(*r[:3], r[3]), "Forest", 0.9, {"Forest": 0.9}) for r in rows])
    code, out, _ = run("resume", str(job), "--json")
    report = json.loads(out)
    assert code == 0 and (report["enqueued"], report["classified"], report["state"]) == (0, 4, "completed")
