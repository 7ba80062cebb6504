"""``tileclass status``: progress from batch rows, tiles/s (a running job's over the last minute, a finished one's over
its active time), ETA, train jobs, --watch."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from core import jobs
from core.db import session_scope
from core.schema import Job, JobBatch, JobKind, JobState, utcnow
from tests.producer.conftest import Deployment, cli, make_tree, xyz

pytestmark = pytest.mark.integration


def status_json(*args: object) -> object:
    result = cli("status", *map(str, args), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def enqueued_job(deployment: Deployment, root: Path) -> int:
    make_tree(root, xyz(8, range(10), range(10)))
    result = cli("enqueue", root, "--model", deployment.model, "--batch-size", 10, "--json")
    assert result.exit_code == 0, result.output
    return int(json.loads(result.stdout)["job_id"])


def test_status_reports_counts_rate_and_eta(embedded: Deployment, tmp_path: Path) -> None:
    job_id = enqueued_job(embedded, tmp_path / "tiles")
    with session_scope() as session:
        jobs.record_batch_done(session, job_id=job_id, seq=0, tiles=10, classified=10, failed=0)
        jobs.record_batch_done(session, job_id=job_id, seq=1, tiles=10, classified=8, failed=2)
    row = status_json(job_id)
    assert isinstance(row, dict)
    assert {k: row[k] for k in ("job_id", "kind", "state", "total", "classified", "failed", "pending")} == {
        "job_id": job_id, "kind": "classify", "state": "queued", "total": 100, "classified": 18, "failed": 2,
        "pending": 80,
    }
    assert (row["batches_total"], row["batches_done"]) == (10, 2)
    assert row["tiles_per_second"] == pytest.approx(20 / 60, abs=0.01)
    assert row["eta_seconds"] == pytest.approx(80 / (20 / 60), rel=0.01)
    table = cli("status")
    assert table.exit_code == 0
    line = next(line.split() for line in table.stdout.splitlines() if line.split()[:1] == [str(job_id)])
    assert line[:8] == [str(job_id), "classify", "queued", "100", "18", "2", "0", "80"]
    assert line[9] == "4m00s"


def test_a_finished_job_shows_its_average_over_its_active_time_not_a_minute(embedded: Deployment,
                                                                            tmp_path: Path) -> None:
    job_id = enqueued_job(embedded, tmp_path / "tiles")  # 100 tiles in 10 batches
    start = utcnow() - timedelta(hours=3)
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(created_at=start))
        for seq in range(10):
            jobs.record_batch_done(session, job_id=job_id, seq=seq, tiles=10, classified=9, failed=0, empty=1)
        # 8 batches run from the job's creation to 8 s later (the first one's row written by its worker, as when
        # it finishes before the producer records it); 2 more an hour later (a retry): 8 + 2 = 10 s active.
        for seq in range(8):
            session.execute(update(JobBatch).where(JobBatch.job_id == job_id, JobBatch.seq == seq).values(
                enqueued_at=start + timedelta(seconds=seq + 1 if seq == 0 else 0.2),
                finished_at=start + timedelta(seconds=seq + 1)))
        for seq in (8, 9):
            session.execute(update(JobBatch).where(JobBatch.job_id == job_id, JobBatch.seq == seq).values(
                enqueued_at=start + timedelta(hours=1), finished_at=start + timedelta(hours=1, seconds=seq - 7)))
    row = status_json(job_id)
    assert isinstance(row, dict)
    assert (row["state"], row["classified"], row["empty"], row["pending"]) == ("completed", 90, 10, 0)
    assert (row["active_seconds"], row["tiles_per_second"]) == (10.0, 10.0)  # not 100 / 60, nor 0 three hours on
    line = next(line.split() for line in cli("status").stdout.splitlines() if line.split()[:1] == [str(job_id)])
    assert line[8:10] == ["10.0", "-"]
    again = status_json(job_id)
    assert isinstance(again, dict) and (again["active_seconds"], again["tiles_per_second"]) == (10.0, 10.0)


def test_status_lists_recent_jobs_and_shows_train_messages(embedded: Deployment, tmp_path: Path) -> None:
    classify_id = enqueued_job(embedded, tmp_path / "tiles")
    with session_scope() as session:
        train_id = jobs.create_job(session, kind=JobKind.TRAIN).id
        jobs.set_state(session, job_ids=[train_id], state=JobState.RUNNING, message="epoch 3/10, val acc 0.91")
    rows = status_json()
    assert isinstance(rows, list)
    assert [r["job_id"] for r in rows] == [train_id, classify_id]
    assert (rows[0]["kind"], rows[0]["state"], rows[0]["message"]) == ("train", "running", "epoch 3/10, val acc 0.91")
    table = cli("status").stdout
    assert "epoch 3/10, val acc 0.91" in table and "running" in table


def test_watch_ends_when_the_job_completes(embedded: Deployment, tmp_path: Path) -> None:
    job_id = enqueued_job(embedded, tmp_path / "tiles")
    with session_scope() as session:
        for seq in range(10):
            jobs.record_batch_done(session, job_id=job_id, seq=seq, tiles=10, classified=10, failed=0)
    result = cli("status", job_id, "--watch", "--json", "--interval", "0.1")
    assert result.exit_code == 0
    last = json.loads(result.stdout.splitlines()[-1])
    assert (last["state"], last["pending"], last["classified"]) == ("completed", 0, 100)


def test_status_of_unknown_job_and_no_jobs(embedded: Deployment) -> None:
    assert "No jobs yet" in cli("status").stdout
    result = cli("status", "42")
    assert result.exit_code == 2 and result.output.strip() == "Error: job 42 does not exist (job ids run 1..0)"
