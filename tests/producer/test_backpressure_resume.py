"""The producer as a real process on Redis: it waits for room in the broker, and a killed or interrupted run is
finished by running the same command again, with no hole and no duplicate result."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import redis

from core import jobs
from core.db import session_scope
from core.messages import CLASSIFY_QUEUE
from core.models.lookups import find_model
from core.schema import Job
from tests.producer.conftest import Deployment, classify, cli, consume, make_tree, tileclass, tiles_in, xyz

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def wait_until(condition, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_producer_keeps_at_most_max_queued_batches_and_waits(on_redis: Deployment, tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    expected = make_tree(root, xyz(9, range(3), range(10)))  # 30 tiles → 15 batches of 2
    broker = redis.Redis.from_url(on_redis.broker_url)
    producer = tileclass("enqueue", root, "--model", on_redis.model, "--batch-size", 2, "--max-queued", 3, "--json",
                         deployment=on_redis, cwd=tmp_path)
    app, seen, batches = on_redis.app(), [], []
    try:
        wait_until(lambda: broker.llen(CLASSIFY_QUEUE) == 3)
        for _ in range(40):  # a second with a full queue: the producer must sit and wait
            seen.append(broker.llen(CLASSIFY_QUEUE))
            time.sleep(0.025)
        assert producer.poll() is None and set(seen) == {3}
        while producer.poll() is None or broker.llen(CLASSIFY_QUEUE):
            seen.append(broker.llen(CLASSIFY_QUEUE))
            if seen[-1] == 3 or producer.poll() is not None:
                batches += consume(app, limit=3, timeout=0.1)
            time.sleep(0.01)
    finally:
        producer.kill()
    out, err = producer.communicate()
    assert producer.returncode == 0, err
    assert max(seen) <= 3
    assert len(batches) == 15 and sorted(row[3] for row in tiles_in(batches)) == sorted(expected)
    assert json.loads(out)["batches"] == 15


def test_killed_producer_is_finished_by_a_rerun_without_holes_or_duplicates(on_redis: Deployment,
                                                                             tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    make_tree(root, xyz(9, range(6), range(10)))  # 60 tiles
    command = ["enqueue", root, "--model", on_redis.model, "--batch-size", 4, "--max-queued", 2]
    producer = tileclass(*command, "--json", deployment=on_redis, cwd=tmp_path)
    app, consumed = on_redis.app(), []
    try:
        while len(consumed) < 5:  # a worker takes five batches while the producer is mid-way
            got = consume(app, limit=1, timeout=0.1)
            classify(got)
            consumed += got
        producer.send_signal(signal.SIGKILL)
        producer.wait(10)
    finally:
        producer.kill()
        producer.communicate()
    with session_scope() as session:
        job = session.get(Job, 1)
        assert job is not None and job.state == "enqueuing"
    rerun = cli(*command, "--max-queued", 1000, "--json")
    assert rerun.exit_code == 0, rerun.output
    summary = json.loads(rerun.stdout)
    assert (summary["job_id"], summary["resumed"]) == (1, True)
    rest = consume(app)
    classify(rest)
    everything = {(9, x, y) for x in range(6) for y in range(10)}
    assert {row[:3] for row in tiles_in(consumed + rest)} == everything  # no hole
    with session_scope() as session:
        assert find_model(session, ref=on_redis.model, count_results=True).results == 60  # no duplicate row
        assert jobs.refresh_state(session, job_id=1) == "completed"
        progress = jobs.progress(session, job_id=1)
        assert progress.pending == 0 and progress.classified == progress.total


def test_ctrl_c_records_the_job_and_the_same_command_continues_it(on_redis: Deployment, tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    make_tree(root, xyz(9, range(10), (5, 6)))  # ten columns of two tiles, one column per batch
    command = ["enqueue", root, "--model", on_redis.model, "--batch-size", 2, "--max-queued", 1]
    producer = tileclass(*command, deployment=on_redis, cwd=tmp_path)
    broker = redis.Redis.from_url(on_redis.broker_url)
    try:
        wait_until(lambda: broker.llen(CLASSIFY_QUEUE) == 1)
        time.sleep(0.5)  # the producer now waits for room
        producer.send_signal(signal.SIGINT)
        _, err = producer.communicate(timeout=20)
    finally:
        producer.kill()
    assert producer.returncode == 130
    assert err.strip().splitlines()[-1] == (
        "Interrupted after 2 tiles: job 1 is resumable; run the same command again to continue.")
    rerun = cli(*command, "--max-queued", 100, "--json")
    assert rerun.exit_code == 0, rerun.output
    summary = json.loads(rerun.stdout)
    assert (summary["job_id"], summary["resumed"], summary["enqueued"], summary["state"]) == (1, True, 18, "queued")
    rows = tiles_in(consume(on_redis.app()))
    assert sorted(row[:3] for row in rows) == sorted((9, x, y) for x in range(10) for y in (5, 6))  # each once
    with session_scope() as session:
        job = session.get(Job, 1)
        assert job is not None and (job.total_tiles, job.total_batches) == (20, 10)


def test_resumed_job_skips_tiles_classified_since_the_interruption(on_redis: Deployment, tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    make_tree(root, xyz(9, (1, 2), range(4)))  # two columns of four: the interruption falls inside column 1
    command = ["enqueue", root, "--model", on_redis.model, "--batch-size", 2, "--max-queued", 1]
    producer = tileclass(*command, deployment=on_redis, cwd=tmp_path)
    broker = redis.Redis.from_url(on_redis.broker_url)
    try:
        wait_until(lambda: broker.llen(CLASSIFY_QUEUE) == 1)
        time.sleep(0.5)
        producer.send_signal(signal.SIGINT)
        producer.communicate(timeout=20)
    finally:
        producer.kill()
    assert producer.returncode == 130
    first = consume(on_redis.app())
    classify(first)  # a worker finishes the only published batch
    rerun = cli(*command, "--max-queued", 100, "--json")
    assert rerun.exit_code == 0, rerun.output
    summary = json.loads(rerun.stdout)
    assert (summary["job_id"], summary["resumed"], summary["skipped"], summary["enqueued"]) == (1, True, 2, 6)
    rest = consume(on_redis.app())
    assert not {row[:3] for row in tiles_in(first)} & {row[:3] for row in tiles_in(rest)}
    classify(rest)
    with session_scope() as session:
        assert find_model(session, ref=on_redis.model, count_results=True).results == 8
        assert session.get(Job, 1).state == "completed"  # type: ignore[union-attr]
