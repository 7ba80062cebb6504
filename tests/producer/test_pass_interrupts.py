"""``resume`` and ``retry`` stop as ``enqueue`` does, through the one pass driver (producer.publication): Ctrl-C
while the broker is full, or a broker that cannot be reached, is one line and a non-zero exit, what was published
is recorded, and the same command run again finishes the job with every tile classified once."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from core import jobs
from core.db import session_scope
from core.job_states import JobPhase, JobState
from core.messages import CLASSIFY_QUEUE, ClassifyBatch
from core.results import Failure
from core.schema import JobBatch, TileResult
from tests.producer.conftest import Deployment, classify, cli, consume, make_tree, tileclass, xyz

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TILES = sorted((9, x, y) for x in range(10) for y in (5, 6))  # ten columns of two: a batch each


def wait_until(condition, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def enqueued_job(deployment: Deployment, tmp_path: Path) -> list[dict[str, object]]:
    """Job 1 over twenty tiles in ten batches, all taken off the broker (and returned) before any is classified."""
    make_tree(tmp_path / "tiles", xyz(9, range(10), (5, 6)))
    done = cli("enqueue", tmp_path / "tiles", "--model", deployment.model, "--batch-size", 2, "--json")
    assert done.exit_code == 0 and json.loads(done.stdout)["job_id"] == 1, done.output
    return consume(deployment.app())


def failed_job(deployment: Deployment, tmp_path: Path) -> None:
    """Job 1 over twenty tiles, completed with every tile failed."""
    from worker.recording import BatchOutcome, record_outcome

    for message in enqueued_job(deployment, tmp_path):
        batch = ClassifyBatch.from_message(message)
        record_outcome(batch, BatchOutcome([], [Failure(tile, "truncated file") for tile in batch.tiles]),
                       model_registered=True)
    assert stage() == (JobState.COMPLETED, None)


def stage() -> tuple[str, str | None]:
    with session_scope() as session:
        job = jobs.get_job(session, 1)
        return job.state, job.phase


def recorded_seqs() -> set[int]:
    with session_scope() as session:
        return set(session.scalars(select(JobBatch.seq).where(JobBatch.job_id == 1,
                                                              JobBatch.state == JobState.QUEUED)))


def classified_once() -> None:
    """Every tile of the job's region has exactly one result."""
    with session_scope() as session:
        rows = sorted(tuple(row) for row in session.execute(select(TileResult.z, TileResult.x, TileResult.y)))
    assert rows == TILES


@pytest.mark.parametrize("command", ["resume", "retry"])
def test_ctrl_c_stops_resume_and_retry_in_one_line_and_the_same_command_finishes_the_job(
        command: str, on_redis: Deployment, tmp_path: Path) -> None:
    if command == "resume":
        enqueued_job(on_redis, tmp_path)  # the broker lost every batch
    else:
        failed_job(on_redis, tmp_path)
    producer = tileclass(command, 1, "--batch-size", 2, "--max-queued", 1, deployment=on_redis, cwd=tmp_path)
    broker = redis.Redis.from_url(on_redis.broker_url)
    try:
        wait_until(lambda: broker.llen(CLASSIFY_QUEUE) == 1)
        time.sleep(0.5)  # the producer now waits for room
        producer.send_signal(signal.SIGINT)
        _, err = producer.communicate(timeout=20)
    finally:
        producer.kill()
    assert producer.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == (
        "Interrupted after 2 tiles: job 1 is resumable; run the same command again to continue.")
    # Nothing lost: the batch in the broker is recorded, and the job waits for the same pass to continue it.
    sent = [ClassifyBatch.from_message(message).seq for message in consume(on_redis.app())]
    assert len(sent) == 1 and set(sent) <= recorded_seqs()
    assert stage() == (JobState.ENQUEUING, JobPhase(command))

    rerun = cli(command, 1, "--max-queued", 100, "--json")
    assert rerun.exit_code == 0, rerun.output
    assert json.loads(rerun.stdout)["state"] == JobState.QUEUED
    classify(consume(on_redis.app()))
    classified_once()
    assert stage() == (JobState.COMPLETED, None)


@pytest.mark.parametrize("command", ["resume", "retry"])
def test_an_unreachable_broker_stops_resume_and_retry_in_one_line_and_the_same_command_finishes_the_job(
        command: str, on_redis: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import get_settings

    if command == "resume":
        enqueued_job(on_redis, tmp_path)
    else:
        failed_job(on_redis, tmp_path)
    monkeypatch.setenv("TILECLASS_BROKER_URL", "redis://:secret@127.0.0.1:1/0")
    get_settings.cache_clear()
    result = cli(command, 1)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "secret" not in result.output, result.output
    assert lines[0].startswith("Error: cannot reach the broker at redis://:**@127.0.0.1:1/0") \
        and lines[0].endswith("; job 1 is resumable"), result.output
    assert stage() == (JobState.ENQUEUING, JobPhase(command))

    monkeypatch.setenv("TILECLASS_BROKER_URL", on_redis.broker_url)
    get_settings.cache_clear()
    rerun = cli(command, 1, "--json")
    assert rerun.exit_code == 0, rerun.output
    classify(consume(on_redis.app()))
    classified_once()
    assert stage() == (JobState.COMPLETED, None)
