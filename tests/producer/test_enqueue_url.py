"""``tileclass enqueue URL`` against a real loopback tile server and real Redis: the region's cover is enqueued,
the probe stops a wrong URL, a dead server or a missing secret in one line before anything is enqueued, and a
token in the URL never reaches the job row, the messages or the output; ``{env:VAR}`` only for the variables
``TILECLASS_SOURCE_ENV`` lists (never ``TILECLASS_*``), and a redirect to another host only with
``--allow-redirect-host``."""

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
    monkeypatch.setenv("TILECLASS_SOURCE_ENV", '["TILE_TOKEN"]')
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
    monkeypatch.setenv("TILECLASS_SOURCE_ENV", '["NOT_SET_HERE"]')
    for url, message in cases:
        result = cli("enqueue", url, "--model", on_redis.model, *region())
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    listing = cli("enqueue", server.template, "--model", on_redis.model, "--zoom", "17")
    assert listing.exit_code == 2 and "a tile server cannot be listed: give --zoom and --bbox" in listing.output
    assert cli("enqueue", server.template, "--model", on_redis.model, *region(), "--layout", "plain").exit_code == 2
    assert jobs_count() == 0 and redis.Redis.from_url(on_redis.broker_url).llen(CLASSIFY_QUEUE) == 0


def test_env_placeholders_need_the_operators_list_and_tileclass_settings_are_refused_even_when_listed(
        on_redis: Deployment, server: TileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import get_settings

    monkeypatch.setenv("MAPKEY", TOKEN)
    monkeypatch.setenv("TILECLASS_API_TOKEN", "the-api-token-of-this-host")
    cases = [
        ("?key={env:MAPKEY}", "{env:MAPKEY} is not allowed on this host: list it in TILECLASS_SOURCE_ENV (a JSON "
                              "list of names; listed now: none)"),
        ("?t={env:TILECLASS_API_TOKEN}", "{env:TILECLASS_API_TOKEN} is refused: tileclass's own TILECLASS_* "
                                         "settings are never sent to a tile server"),
        ("?db={env:TILECLASS_DATABASE_URL}", "{env:TILECLASS_DATABASE_URL} is refused"),
    ]
    for listed in ("[]", '["TILECLASS_API_TOKEN", "TILECLASS_DATABASE_URL"]'):
        monkeypatch.setenv("TILECLASS_SOURCE_ENV", listed)
        get_settings.cache_clear()
        for query, message in cases[1:] if listed != "[]" else cases:
            result = cli("enqueue", server.template + query, "--model", on_redis.model, *region(), "--probe", "1")
            assert result.exit_code == 2, result.output
            assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert sum(server.requests.values()) == 0 and jobs_count() == 0  # nothing was sent, nothing enqueued
    monkeypatch.setenv("TILECLASS_SOURCE_ENV", '["MAPKEY"]')
    get_settings.cache_clear()
    allowed = cli("enqueue", server.template + "?key={env:MAPKEY}", "--model", on_redis.model, *region(),
                  "--probe", "1", "--json")
    assert allowed.exit_code == 0, allowed.output
    assert server.queries == [f"key={TOKEN}"] and TOKEN not in allowed.output


def test_a_redirect_to_another_host_stops_the_probe_unless_the_source_allows_that_host(
        on_redis: Deployment, server: TileServer, tmp_path: Path) -> None:
    with serving(tmp_path / "tree") as other:
        for x in range(70000, 70004):
            for y in range(42000, 42003):
                server.fault(f"17/{x}/{y}", "always:redirect:" + other.template.format(z=17, x=x, y=y))
        refused = cli("enqueue", server.template, "--model", on_redis.model, *region(), "--probe", "2")
        assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1, refused.output
        assert (f"redirected to another host, 127.0.0.1:{other.port} (enqueue --allow-redirect-host "
                f"127.0.0.1:{other.port} follows it): nothing enqueued") in refused.output
        assert sum(other.requests.values()) == 0 and jobs_count() == 0
        allowed = cli("enqueue", server.template, "--model", on_redis.model, *region(), "--probe", "2",
                      "--allow-redirect-host", f"127.0.0.1:{other.port}", "--json")
        assert allowed.exit_code == 0, allowed.output
        assert json.loads(allowed.stdout)["source"]["redirect_hosts"] == [f"127.0.0.1:{other.port}"]
        assert sum(other.requests.values()) == 2
    folder = cli("enqueue", str(tmp_path / "tree"), "--model", on_redis.model, "--allow-redirect-host", "x.org")
    assert folder.exit_code == 2 and "--allow-redirect-host apply to tile server URLs" in folder.output
    bad = cli("enqueue", server.template, "--model", on_redis.model, *region(), "--allow-redirect-host", "http://a/b")
    assert bad.exit_code == 2 and "--allow-redirect-host 'http://a/b' is not a host: give HOST or HOST:PORT" in \
        bad.output
