"""Forged messages on the broker (issue 32, items 13 and 14): a real Celery worker on Redis and PostgreSQL consumes a
job the producer enqueued, with well-formed messages beside it that an attacker published by hand.

The job's progress counts only its own tiles, each once: tiles outside its region or repeated are left out, a batch
number it never handed out is dropped, and so is a message that reuses a batch's number with other tiles. A batch
number beyond what ``job_batches.seq`` holds is malformed: dropped at once, without retries or a traceback.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import mercantile
import pytest
import redis
from sqlalchemy import select
from typer.testing import CliRunner

from core.celery_app import connected_app, queued_messages
from core.db import session_scope
from core.messages import CLASSIFY_QUEUE, CLASSIFY_TASK
from core.schema import TileResult
from core.settings import get_settings
from producer.cli import app as cli
from tests.integration.test_worker_processes import deploy, job_state
from tests.worker.support import running, start_celery, tile_tree, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ZOOM, X0, Y0, WIDTH = 17, 70000, 42000, 16


def tileclass_json(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def box_inside(x0: int, y0: int, x1: int, y1: int) -> str:
    """A bbox holding exactly the tiles x0..x1, y0..y1 of ``ZOOM`` (just inside their outer edges)."""
    west, _, _, north = mercantile.bounds(x0, y0, ZOOM)
    _, south, east, _ = mercantile.bounds(x1, y1, ZOOM)
    inset = 1e-7
    return ",".join(str(v) for v in (west + inset, south + inset, east - inset, north - inset))


def queued_batches(broker_url: str) -> list[dict[str, Any]]:
    """The classify messages waiting in Redis, oldest first, as a worker would receive them."""
    raw = redis.Redis.from_url(broker_url).lrange(CLASSIFY_QUEUE, 0, -1)
    return [json.loads(base64.b64decode(json.loads(envelope)["body"]))[1]["batch"] for envelope in reversed(raw)]


def test_a_worker_counts_only_the_jobs_own_tiles_once_whatever_is_published_beside_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, postgres_url: str) -> None:
    world = deploy(tmp_path, monkeypatch, database_url=postgres_url, broker_url=redis_url)
    rows = tile_tree(world.root, 4 * WIDTH, zoom=ZOOM, x0=X0, y0=Y0, width=WIDTH)
    inside, beside = rows[:3 * WIDTH], rows[3 * WIDTH:]  # the job's 3 rows of tiles, and a 4th row on disk
    summary = tileclass_json("enqueue", str(world.root), "--model", world.model_hash, "--zoom", str(ZOOM),
                             "--bbox", box_inside(X0, Y0, X0 + WIDTH - 1, Y0 + 2), "--batch-size", "16", "--json")
    job = int(summary["job_id"])
    assert (summary["enqueued"], summary["batches"]) == (48, 3)
    first = queued_batches(redis_url)[0]
    assert first["seq"] == 0 and len(first["tiles"]) == 16

    forged = [
        first | {"seq": 2**62},  # beyond job_batches.seq (int4 on PostgreSQL): malformed
        first | {"tiles": [*first["tiles"], *[list(t) for t in beside], *first["tiles"][:5]]},  # + 21 not the job's
        first | {"seq": 3},  # a number the job never handed out, with tiles it has
        first | {"seq": 1, "tiles": first["tiles"][:8]},  # batch 1's number with 8 tiles of batch 0
    ]
    celery = connected_app(get_settings())
    for message in forged:
        celery.send_task(CLASSIFY_TASK, kwargs={"batch": message})

    log = tmp_path / "worker.log"
    with running(start_celery(world.env, cwd=tmp_path, name="forged", log=log)) as worker:
        def settled() -> bool:
            text = log.read_text(errors="replace")
            return job_state(job) == "completed" and f"dropping batch 1 of job {job}" in text and \
                queued_messages(CLASSIFY_QUEUE, celery) == 0
        wait_for(settled, timeout=180, what=f"job {job} and the forged messages", logs=(log,), processes=(worker,))
    text = log.read_text(errors="replace")

    status = tileclass_json("status", str(job), "--json")
    assert (status["total"], status["classified"], status["failed"], status["empty"], status["pending"]) == \
        (48, 48, 0, 0, 0)
    with session_scope() as session:
        classified = {(r.z, r.x, r.y) for r in session.scalars(select(TileResult).where(TileResult.job_id == job))}
    assert classified == {(t.z, t.x, t.y) for t in inside}

    assert text.count("dropping a malformed classify message") == 1
    assert f"seq must be an integer 0..2147483647, not {2**62}" in text
    assert "Traceback" not in text and "retry 1 of" not in text
    assert f"job {job} batch 0: left out 21 of its 37 tiles, outside the job's region or repeated" in text
    assert f"dropping batch 3 of job {job}: the message names batch 3, which the job never handed out" in text
    assert (f"dropping batch 1 of job {job}: the message has 8 distinct tiles of the job's region, but its batch 1 "
            "was enqueued with 16") in text
