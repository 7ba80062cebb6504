"""The producer killed halfway through an enqueue and run again, and two overlapping jobs enqueued at once."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
from pathlib import Path

import mercantile
import pytest
import redis
from sqlalchemy import select

from core.db import session_scope
from core.messages import CLASSIFY_QUEUE
from core.schema import Job, JobState
from core.tiles import Tile
from tests.integration.faults.conftest import BATCH, World
from tests.integration.faults.harness import job_state, wait_complete, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def producer(world: World, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """`tileclass enqueue ARGS` as its own process, with the deployment's settings."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("TILECLASS_")} | world.deployment.settings
    argv = [sys.executable, "-m", "producer", "enqueue", str(world.deployment.root), "--model", world.model_hash,
            "--batch-size", str(BATCH), "--json", *args]
    with log.open("ab") as handle:
        return subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT)


def newest_job(model_hash: str) -> Job | None:
    with session_scope(read_only=True) as session:
        return session.scalars(select(Job).where(Job.model_hash == model_hash).order_by(Job.id.desc())).first()


def test_a_producer_killed_halfway_and_run_again_completes_the_job_without_duplicates(
        world: World, tmp_path: Path) -> None:
    # --max-queued 2 makes the producer wait for the workers, so it is killed while it still has batches to send.
    first = producer(world, "--max-queued", "2", log=tmp_path / "producer.log")
    try:
        wait_for(lambda: (job := newest_job(world.model_hash)) is not None and job.total_batches >= 5,
                 timeout=120, what="the producer to record 5 batches", pool=world.pool, interval=0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    job = newest_job(world.model_hash)
    assert job is not None and job.state == JobState.ENQUEUING  # interrupted: the region is not all enqueued
    again = json.loads(world.cli("enqueue", str(world.deployment.root), "--model", world.model_hash, "--batch-size",
                                 str(BATCH), "--max-queued", "2", "--json"))
    assert again["job_id"] == job.id and again["resumed"]
    wait_complete(job.id, world.pool)
    # The rerun walks again from the last directory it recorded as fully sent: tiles sent after that and still
    # queued (at most a directory and a batch of them) are sent, and counted, twice. Results stay one row each.
    column = max(sum(1 for r in world.deployment.rows if r[1] == x) for x in {r[1] for r in world.deployment.rows})
    world.check([job.id], recounted=column + BATCH)


class Killed(BaseException):
    """Stands for SIGKILL: nothing the producer does on an error or Ctrl-C runs."""


def queued_seqs(redis_url: str) -> list[int]:
    """The batch numbers of the classify messages waiting in Redis."""
    client = redis.Redis.from_url(redis_url)
    seqs = []
    for raw in client.lrange(CLASSIFY_QUEUE, 0, -1):
        envelope = json.loads(raw)
        _, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
        seqs.append(int(kwargs["batch"]["seq"]))
    client.close()
    return seqs


def test_a_rerun_after_a_kill_never_reuses_the_number_of_a_batch_it_had_sent(
        sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from core.celery_app import connected_app
    from core.settings import get_settings
    from core.sources import FolderSource
    from core.sources.layouts import Layout
    from producer import enqueue as producer_enqueue
    from producer import publication
    from producer.pipeline import Target
    from tests.factories import add_model
    from tests.integration.faults.harness import make_region

    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TILECLASS_BROKER_URL", redis_url)
    get_settings.cache_clear()
    with session_scope() as session:
        model = add_model(session, "seq-reuse")
    root = tmp_path / "tiles"
    make_region(root, 48)
    source = FolderSource.at(root, layout=Layout.parse(), settings=get_settings())
    request = producer_enqueue.EnqueueRequest(Target(source, None, model, batch_size=4))
    # Killed right after sending its 5th batch, before its periodic write of what it sent.
    monkeypatch.setattr(publication, "RECORD_INTERVAL", 3600.0)
    app = connected_app(get_settings())
    send, sent = app.send_task, []

    def send_then_die(*args: object, **kwargs: object) -> object:
        if len(sent) == 5:
            raise Killed
        sent.append(1)
        return send(*args, **kwargs)

    monkeypatch.setattr(app, "send_task", send_then_die)
    with pytest.raises(Killed):
        producer_enqueue.enqueue(request, app=app, max_queued=1000)
    assert len(queued_seqs(redis_url)) == 5
    again = producer_enqueue.enqueue(request, app=connected_app(get_settings()), max_queued=1000)
    assert again.resumed and again.stats.enqueued == 48
    seqs = queued_seqs(redis_url)
    assert len(seqs) == 5 + again.stats.batches
    assert len(set(seqs)) == len(seqs), f"two different batches share a number: {sorted(seqs)}"


def bbox_of(rows: list[Tile]) -> str:
    """The W,S,E,N box from the centre of the north-west tile to the centre of the south-east one: those tiles."""
    z = rows[0][0]
    xs, ys = [r[1] for r in rows], [r[2] for r in rows]
    nw, se = mercantile.bounds(min(xs), min(ys), z), mercantile.bounds(max(xs), max(ys), z)
    west, north = (nw.west + nw.east) / 2, (nw.north + nw.south) / 2
    east, south = (se.west + se.east) / 2, (se.north + se.south) / 2
    return f"{west},{south},{east},{north}"


def test_two_jobs_over_overlapping_regions_at_once_both_complete_with_their_own_counts(
        world: World, tmp_path: Path) -> None:
    x0 = min(r[1] for r in world.deployment.rows)
    left = [r for r in world.deployment.rows if r[1] < x0 + 10]
    right = [r for r in world.deployment.rows if r[1] >= x0 + 6]
    runs = [producer(world, f"--bbox={bbox_of(part)}", "--max-queued", "1000", log=tmp_path / f"producer{i}.log")
            for i, part in enumerate((left, right))]
    for run in runs:
        assert run.wait(timeout=120) == 0, (tmp_path / "producer0.log").read_text()
    outcomes = [json.loads((tmp_path / f"producer{i}.log").read_text().strip().splitlines()[-1]) for i in (0, 1)]
    jobs_ = [outcome["job_id"] for outcome in outcomes]
    assert jobs_[0] != jobs_[1]
    for outcome, part in zip(outcomes, (left, right), strict=True):
        assert outcome["found"] == len(part)  # each job enumerated exactly its region
        assert outcome["enqueued"] + outcome["skipped"] == len(part)
    for job_id in jobs_:
        wait_complete(job_id, world.pool)
    world.check(jobs_)
    assert all(job_state(j) == JobState.COMPLETED for j in jobs_)
