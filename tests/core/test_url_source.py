"""Tile-server sources against a real loopback server with injected faults: templates, retries and Retry-After,
empty and failed tiles, a server that is down, the cache, the shared rate limit (real Redis, a fake clock), the
region cover and the probe."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from core.bbox import BBox
from core.errors import TileRootError
from core.region import Region
from core.settings import load_settings
from core.sources import TileAbsent, TileUnreadable, UrlSource
from core.sources.fetch import FetchPolicy, RateLimiter, SourceDown, fetch, new_client
from core.sources.url_template import UrlTemplate
from core.tiles import Tile
from tests.tile_server import TileServer, serving
from tests.worker.support import tile_tree

TOKEN = "s3cr3t-token-4711"


@pytest.fixture
def server(tmp_path: Path):
    tile_tree(tmp_path / "tree", 8, zoom=17, x0=70000, y0=42000, width=4)
    with serving(tmp_path / "tree") as tiles:
        yield tiles


def get(server: TileServer, tile: str, *, tries: int = 4, timeout: float = 5.0) -> tuple[bytes, list[float]]:
    """Fetch ``tile`` with the workers' code; returns the bytes and the waits between tries (no real sleeping)."""
    waits: list[float] = []
    z, x, y = map(int, tile.split("/"))
    template = UrlTemplate.parse(server.template)
    policy = FetchPolicy(tries=tries, read_timeout=timeout, connect_timeout=timeout)
    data = fetch(new_client(policy), template.url(z, x, y), template.shown(z, x, y), policy=policy,
                 limiter=RateLimiter(0), sleep=waits.append)
    return data, waits


def test_templates_fill_tms_rows_quadkeys_subdomains_and_keep_secrets_out_of_what_is_shown() -> None:
    template = UrlTemplate.parse("https://{s}.tiles.example/{z}/{x}/{-y}.png?key={env:TILE_KEY}&q={q}", "abc")
    assert template.url(3, 1, 2, {"TILE_KEY": TOKEN}) == f"https://a.tiles.example/3/1/5.png?key={TOKEN}&q=021"
    assert template.shown(3, 2, 2) == "https://b.tiles.example/3/2/5.png?key={env:TILE_KEY}&q=030"
    assert template.missing_env({}) == ["TILE_KEY"]
    for text, subdomains, problem in [
        ("ftp://tiles/{z}/{x}/{y}", "", "must start with http:// or https://"),
        ("https://tiles/{z}/{x}.png", "", "needs {z}, {x} and {y} (or {-y}), or {q}"),
        ("https://tiles/{z}/{x}/{y}/{t}.png", "", "unknown placeholder {t}"),
        ("https://{s}.tiles/{z}/{x}/{y}.png", "", "{s} and --subdomains go together"),
        ("https://tiles/{z}/{x}/{y}.png", "abc", "{s} and --subdomains go together"),
    ]:
        with pytest.raises(TileRootError, match=problem.replace("{", r"\{").replace("(", r"\(").replace(")", r"\)")):
            UrlTemplate.parse(text, subdomains)


def test_tiles_are_fetched_and_429_500_drops_and_truncation_are_retried_honouring_retry_after(
        server: TileServer, tmp_path: Path) -> None:
    expected = (tmp_path / "tree" / "17/70000/42000.jpg").read_bytes()
    assert get(server, "17/70000/42000") == (expected, [])
    server.fault("17/70001/42000", "429:7", "500", "drop", "truncate")
    data, waits = get(server, "17/70001/42000", tries=5)
    assert data == (tmp_path / "tree" / "17/70001/42000.jpg").read_bytes()
    assert waits == [7.0, 0.5 * 2 ** 1, 0.5 * 2 ** 2, 0.5 * 2 ** 3]  # Retry-After first, then the backoff
    assert server.requests["17/70001/42000"] == 5


@pytest.mark.parametrize(("faults", "error", "reason"), [
    (["404"], TileAbsent, "no tile at the server (404)"),
    (["204"], TileAbsent, "no tile at the server (204)"),
    (["always:500"], TileUnreadable, "HTTP 500 after 3 tries"),
    (["always:slow:1.5"], TileUnreadable, "timed out after 3 tries"),
    (["always:truncate"], TileUnreadable, "connection dropped or body truncated after 3 tries"),
    (["html"], TileUnreadable, "wrong content type 'text/html' (expected an image)"),
    (["ftp"], TileUnreadable, "redirected from http to ftp"),
])
def test_a_tile_that_keeps_failing_fails_alone_with_its_status_or_reason(
        server: TileServer, faults: list[str], error: type[Exception], reason: str) -> None:
    server.fault("17/70002/42000", *faults)
    with pytest.raises(error) as caught:
        get(server, "17/70002/42000", tries=3, timeout=0.5)
    assert caught.value.reason == reason  # type: ignore[attr-defined]


def test_a_server_that_refuses_connections_is_down_not_the_tiles_fault() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    template = UrlTemplate.parse(f"http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.png?token={{env:TILE_TOKEN}}")
    policy = FetchPolicy(tries=2)
    with pytest.raises(SourceDown) as caught:
        fetch(new_client(policy), template.url(1, 0, 0, {"TILE_TOKEN": TOKEN}), template.shown(1, 0, 0),
              policy=policy, limiter=RateLimiter(0), sleep=lambda _: None)
    assert caught.value.reason == f"tile server unreachable: connection refused or host not found (127.0.0.1:{port}, " \
                                  "2 tries)"
    assert TOKEN not in str(caught.value)


def test_the_cache_keeps_fetched_tiles_so_a_rerun_downloads_nothing(
        server: TileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_TILE_CACHE", str(tmp_path / "cache"))
    source = UrlSource.at(server.template, settings=load_settings())
    tiles = [Tile(17, 70000 + i, 42000) for i in range(4)]
    first = [source.reader(load_settings()).read(tile) for tile in tiles]
    again = [source.reader(load_settings()).read(tile) for tile in tiles]
    assert first == again and sum(server.requests.values()) == 4
    assert sorted(p.name for p in (tmp_path / "cache" / source.name / "17").rglob("*.tile")) == ["42000.tile"] * 4


def test_the_rate_limit_is_shared_by_every_worker_through_redis(redis_url: str) -> None:
    import redis

    now, slept = [1000.25], []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 2))
        now[0] += seconds

    client = redis.Redis.from_url(redis_url)
    workers = [RateLimiter(3, redis=client, key="tileclass:rate:test", clock=lambda: now[0], sleep=sleep)
               for _ in range(2)]
    for i in range(7):
        workers[i % 2].wait()  # two workers, alternating, 7 requests at 3 per second
    assert slept == [0.75, 1.0]  # the 4th waits for the next second, the 7th for the one after
    local = RateLimiter(4, clock=lambda: now[0], sleep=sleep)  # the embedded broker: per process
    slept.clear()
    for _ in range(3):
        local.wait()
    assert slept == [0.25, 0.25]  # a quarter of a second apart


def test_the_cover_of_a_region_and_a_probe_that_stops_a_wrong_url(server: TileServer) -> None:
    box = BBox.of([*Tile(17, 70000, 42001).bounds()[:2], *Tile(17, 70003, 42000).bounds()[2:]])
    region = Region(zooms=[17], bbox=BBox.of([box.west + 1e-6, box.south + 1e-6, box.east - 1e-6,
                                              box.north - 1e-6]))
    source = UrlSource.at(server.template, settings=load_settings(), max_rate=5)
    chunks = list(source.tiles(region))
    assert [chunk.column for chunk in chunks] == [(17, x) for x in range(70000, 70004)]
    assert sorted(t.xyz() for c in chunks for t in c.tiles) == [(17, x, y) for x in range(70000, 70004)
                                                                for y in (42000, 42001)]
    resumed = [t.xyz() for c in source.tiles(region, after=(17, 70001)) for t in c.tiles]
    assert resumed == [(17, x, y) for x in (70002, 70003) for y in (42000, 42001)]
    assert source.probe(region, 3, load_settings()) == 3
    assert json.loads(json.dumps(source.to_record())) == {"kind": "url", "name": source.name,
                                                          "template": server.template, "subdomains": "",
                                                          "max_rate": 5.0}
    with pytest.raises(TileRootError, match="a tile server cannot be listed: give --zoom and --bbox or --geojson"):
        list(source.tiles(Region(zooms=[17])))
    nowhere = UrlSource.at(server.template.replace("/tiles/", "/nothing/"), settings=load_settings())
    with pytest.raises(TileRootError, match=r"every probed tile \(3\) answered 404/204, e.g. http://127.0.0.1:"):
        nowhere.probe(region, 3, load_settings())


def test_a_named_tile_server_and_a_host_that_names_its_own_template_for_it(
        server: TileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.layouts import Layout
    from core.sources.spec import source_for

    monkeypatch.setenv("TILECLASS_SOURCES", json.dumps({"ortho": "https://tiles.example/{z}/{x}/{y}.jpg"}))
    named = source_for("@ortho", layout=Layout.parse(), settings=load_settings(), max_rate=2)
    assert (named.kind, named.name, named.path, named.max_rate) == ("url", "ortho",
                                                                     "https://tiles.example/{z}/{x}/{y}.jpg", 2.0)
    # This worker reaches the same imagery through its own mirror: same name, its own template.
    monkeypatch.setenv("TILECLASS_SOURCES", json.dumps({"ortho": server.template}))
    assert named.reader(load_settings()).read(Tile(17, 70000, 42000))[:3] == b"\xff\xd8\xff"
    with pytest.raises(TileRootError, match="--subdomains and --max-rate apply to tile server URLs"):
        source_for(".", layout=Layout.parse(), settings=load_settings(), subdomains="abc")


def test_a_source_name_from_the_database_never_becomes_a_path_of_the_cache(
        server: TileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.sources import source_from_record

    monkeypatch.setenv("TILECLASS_TILE_CACHE", str(tmp_path / "cache"))
    hostile = source_from_record({"kind": "url", "name": "../../outside", "template": server.template})
    with pytest.raises(TileRootError, match=r"tile source name '../../outside' is not a plain name"):
        hostile.reader(load_settings())
    assert not (tmp_path / "outside").exists()
    assert UrlSource.at("http://[::1]:8080/{z}/{x}/{y}.png", settings=load_settings()).name.startswith("1-")
