"""``tileclass enqueue URL`` against a real loopback tile server and real Redis: the region's cover is enqueued,
the probe stops a wrong URL, a dead server or a missing secret in one line before anything is enqueued, and a
token in the URL never reaches the job row, the messages or the output."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from core.db import session_scope
from core.messages import CLASSIFY_QUEUE
from core.schema import Job
from core.tiles import Tile
from tests.producer.conftest import Deployment, cli
from tests.tile_server import TileServer, serving
from tests.worker.support import tile_tree

pytestmark = pytest.mark.integration
TOKEN = "tok-9f8e7d6c5b4a"


@pytest.fixture
def server(tmp_path: Path):
    tile_tree(tmp_path / "tree", 12, zoom=17, x0=70000, y0=42000, width=4)  # 4 columns x 3 rows
    with serving(tmp_path / "tree") as tiles:
        yield tiles


def region() -> list[str]:
    west, south, *_ = Tile(17, 70000, 42002).bounds()
    *_, east, north = Tile(17, 70003, 42000).bounds()
    return ["--zoom", "17", "--bbox", f"{west + 1e-6},{south + 1e-6},{east - 1e-6},{north - 1e-6}"]


def jobs_count() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def test_a_url_source_enqueues_the_cover_and_its_token_never_leaves_the_environment(
        on_redis: Deployment, server: TileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILE_TOKEN", TOKEN)
    url = server.template + "?access_token={env:TILE_TOKEN}"
    counted = cli("enqueue", url, "--model", on_redis.model, *region(), "--dry-run", "--json")
    assert counted.exit_code == 0, counted.output
    assert (json.loads(counted.stdout)["per_zoom"], sum(server.requests.values())) == ({"17": 12}, 0)  # offline

    result = cli("enqueue", url, "--model", on_redis.model, *region(), "--batch-size", "5", "--probe", "2", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["enqueued"], summary["batches"]) == (12, 3)
    assert summary["source"] == {"kind": "url", "name": summary["root"], "template": url, "subdomains": "",
                                 "max_rate": 0.0}
    assert sum(server.requests.values()) == 2 and server.queries == [f"access_token={TOKEN}"] * 2  # the probe
    queued = b"".join(redis.Redis.from_url(on_redis.broker_url).lrange(CLASSIFY_QUEUE, 0, -1))
    with session_scope() as session:
        job = session.get(Job, summary["job_id"])
        row = json.dumps([job.source, job.region, job.message])
    for place in (row, result.output, counted.output):
        assert TOKEN not in place and "{env:TILE_TOKEN}" in place
    assert TOKEN not in queued.decode() and "127.0.0.1" not in queued.decode()  # messages carry the name only


def test_the_probe_stops_a_wrong_url_a_dead_server_and_a_missing_secret_before_anything_is_enqueued(
        on_redis: Deployment, server: TileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{free.getsockname()[1]}/{{z}}/{{x}}/{{y}}.png"
    cases = [
        (server.template.replace("/tiles/", "/missing/"), "every probed tile (3) answered 404/204, e.g. http://"),
        (dead, "tile server unreachable: connection refused or host not found"),
        (server.template + "?key={env:NOT_SET_HERE}", "needs NOT_SET_HERE set in the environment of this host"),
        ("https://tiles.example/{z}/{x}.png", "needs {z}, {x} and {y} (or {-y}), or {q}"),
    ]
    monkeypatch.delenv("NOT_SET_HERE", raising=False)
    for url, message in cases:
        result = cli("enqueue", url, "--model", on_redis.model, *region())
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    listing = cli("enqueue", server.template, "--model", on_redis.model, "--zoom", "17")
    assert listing.exit_code == 2 and "a tile server cannot be listed: give --zoom and --bbox" in listing.output
    assert cli("enqueue", server.template, "--model", on_redis.model, *region(), "--layout", "plain").exit_code == 2
    assert jobs_count() == 0 and redis.Redis.from_url(on_redis.broker_url).llen(CLASSIFY_QUEUE) == 0
