"""Tile-server sources against a real loopback server with injected faults: templates, retries and Retry-After,
empty and failed tiles, a server that is down, the cache, the shared rate limit (real Redis, a fake clock), the
region cover and the probe; a server dripping its answer ends by the deadline or when the process stops,
``{env:VAR}`` reads only what ``TILECLASS_SOURCE_ENV`` lists, and redirects stay on the template's host."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from core.bbox import BBox
from core.errors import SettingsError
from core.region import Region
from core.settings import load_settings
from core.sources import TileAbsent, TileUnreadable, UrlSource, deadline
from core.sources.base import SourceError
from core.sources.fetch import FetchPolicy, RateLimiter, RedirectRefused, SourceDown, fetch, new_client
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


def get(server: TileServer, tile: str, *, tries: int = 4, timeout: float = 5.0,
        redirect_hosts: tuple[str, ...] = ()) -> tuple[bytes, list[float]]:
    """Fetch ``tile`` with the workers' code; returns the bytes and the waits between tries (no real sleeping)."""
    waits: list[float] = []
    z, x, y = map(int, tile.split("/"))
    template = UrlTemplate.parse(server.template)
    policy = FetchPolicy(tries=tries, read_timeout=timeout, connect_timeout=timeout, redirect_hosts=redirect_hosts)
    data = fetch(new_client(policy), template.url(z, x, y, {}), template.shown(z, x, y), policy=policy,
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
        with pytest.raises(SourceError, match=problem.replace("{", r"\{").replace("(", r"\(").replace(")", r"\)")):
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
    with pytest.raises(SourceError, match="a tile server cannot be listed: give --zoom and --bbox or --geojson"):
        list(source.tiles(Region(zooms=[17])))
    nowhere = UrlSource.at(server.template.replace("/tiles/", "/nothing/"), settings=load_settings())
    with pytest.raises(SourceError, match=r"every probed tile \(3\) answered 404/204, e.g. http://127.0.0.1:"):
        nowhere.probe(region, 3, load_settings())


def test_a_named_tile_server_and_a_host_that_names_its_own_template_for_it(
        server: TileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.sources.spec import source_for

    monkeypatch.setenv("TILECLASS_SOURCES", json.dumps({"ortho": "https://tiles.example/{z}/{x}/{y}.jpg"}))
    named = source_for("@ortho", settings=load_settings(), max_rate=2)
    assert (named.kind, named.name, named.path, named.max_rate) == ("url", "ortho",
                                                                     "https://tiles.example/{z}/{x}/{y}.jpg", 2.0)
    # This worker reaches the same imagery through its own mirror: same name, its own template.
    monkeypatch.setenv("TILECLASS_SOURCES", json.dumps({"ortho": server.template}))
    assert named.reader(load_settings()).read(Tile(17, 70000, 42000))[:3] == b"\xff\xd8\xff"
    with pytest.raises(SourceError, match="--subdomains, --max-rate and --allow-redirect-host apply to tile server"):
        source_for(".", settings=load_settings(), subdomains="abc")


def test_a_source_name_from_the_database_never_becomes_a_path_of_the_cache(
        server: TileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.sources import source_from_record

    monkeypatch.setenv("TILECLASS_TILE_CACHE", str(tmp_path / "cache"))
    hostile = source_from_record({"kind": "url", "name": "../../outside", "template": server.template})
    with pytest.raises(SourceError, match=r"tile source name '../../outside' is not a plain name"):
        hostile.reader(load_settings())
    assert not (tmp_path / "outside").exists()
    assert UrlSource.at("http://[::1]:8080/{z}/{x}/{y}.png", settings=load_settings()).name.startswith("1-")


def test_a_server_dripping_its_answer_is_too_slow_by_the_deadline_a_host_problem_not_the_tiles(
        server: TileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # One byte every 0.5 s: each wait far inside the 20 s read timeout, the whole answer some 30 minutes long.
    server.fault("17/70000/42000", "always:drip:0.5")
    monkeypatch.setenv("TILECLASS_FETCH_DEADLINE", "2")
    reader = UrlSource.at(server.template, settings=load_settings()).reader(load_settings())
    started = time.monotonic()
    with pytest.raises(SourceDown) as caught:
        reader.read(Tile(17, 70000, 42000))
    assert time.monotonic() - started < 15  # instead of running for half an hour
    assert caught.value.reason == ("tile server too slow: no whole answer within the 2 s deadline "
                                   f"(127.0.0.1:{server.port}, TILECLASS_FETCH_DEADLINE)")
    assert server.requests["17/70000/42000"] == 1  # the deadline covers the retries too: none was made


def test_stopping_the_process_ends_a_dripping_fetch_at_once_whatever_its_deadline(server: TileServer) -> None:
    server.fault("17/70000/42000", "always:drip:0.5")
    template = UrlTemplate.parse(server.template)
    policy = FetchPolicy(deadline=3600)
    client = new_client(policy)
    stop = threading.Timer(1.0, deadline.stop_fetches)
    stop.start()
    started = time.monotonic()
    try:
        with pytest.raises(deadline.FetchStopped):
            fetch(client, template.url(17, 70000, 42000, {}), template.shown(17, 70000, 42000), policy=policy,
                  limiter=RateLimiter(0))
        assert time.monotonic() - started < 15
        with pytest.raises(deadline.FetchStopped):  # and no new one starts
            fetch(client, template.url(17, 70001, 42000, {}), template.shown(17, 70001, 42000), policy=policy,
                  limiter=RateLimiter(0))
    finally:
        stop.cancel()
        deadline.resume_fetches()
    assert fetch(client, template.url(17, 70001, 42000, {}), template.shown(17, 70001, 42000), policy=policy,
                 limiter=RateLimiter(0))[:3] == b"\xff\xd8\xff"


def test_redirects_are_followed_within_the_templates_host_and_to_another_only_when_the_source_allows_it(
        server: TileServer, tmp_path: Path) -> None:
    expected = (tmp_path / "tree" / "17/70000/42000.jpg").read_bytes()
    with serving(tmp_path / "tree") as other:
        elsewhere = f"http://127.0.0.1:{other.port}/tiles/17/70001/42000.jpg"
        server.fault("17/70000/42000", "redirect:/tiles/17/70000/42000.jpg?moved=1")
        assert get(server, "17/70000/42000")[0] == expected  # same host and port: followed
        assert "moved=1" in server.queries
        server.fault("17/70000/42000", "redirect:" + elsewhere)
        with pytest.raises(RedirectRefused) as caught:
            get(server, "17/70000/42000")
        assert caught.value.reason == (f"redirected to another host, 127.0.0.1:{other.port} "
                                       f"(enqueue --allow-redirect-host 127.0.0.1:{other.port} follows it)")
        assert sum(other.requests.values()) == 0  # the other host was never asked
        for allowed in (f"127.0.0.1:{other.port}", "127.0.0.1"):  # that port, or the host on any port
            server.fault("17/70000/42000", "redirect:" + elsewhere)
            assert get(server, "17/70000/42000", redirect_hosts=(allowed,))[0] != expected
        server.fault("17/70000/42000", "redirect:" + elsewhere)
        with pytest.raises(RedirectRefused):  # another port of an allowed host:port is another host
            get(server, "17/70000/42000", redirect_hosts=(f"127.0.0.1:{other.port + 1}",))
    source = UrlSource.at(server.template, settings=load_settings(), redirect_hosts=("Tiles.Example:8443",))
    assert source.to_record()["redirect_hosts"] == ["tiles.example:8443"]
    assert UrlSource.from_record(source.to_record()) == source
    assert "redirect_hosts" not in UrlSource.at(server.template, settings=load_settings()).to_record()
    with pytest.raises(SourceError, match=r"--allow-redirect-host 'http://x/y' is not a host: give HOST or "):
        UrlSource.at(server.template, settings=load_settings(), redirect_hosts=("http://x/y",))


def test_env_placeholders_read_only_the_variables_this_host_lists_and_never_tileclass_settings(
        server: TileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.sources import source_from_record

    monkeypatch.setenv("MAPKEY", TOKEN)
    monkeypatch.setenv("TILECLASS_API_TOKEN", "the-servers-own-api-token")
    with_key = server.template + "?key={env:MAPKEY}"
    with pytest.raises(SourceError) as caught:
        UrlSource.at(with_key, settings=load_settings())
    assert str(caught.value) == (f"tile URL {server.template!r}: {{env:MAPKEY}} is not allowed on this host: list it "
                                 "in TILECLASS_SOURCE_ENV (a JSON list of names; listed now: none)")
    monkeypatch.setenv("TILECLASS_SOURCE_ENV", json.dumps(["MAPKEY", "TILECLASS_API_TOKEN"]))
    source = UrlSource.at(with_key, settings=load_settings())
    assert source.reader(load_settings()).read(Tile(17, 70000, 42000))[:3] == b"\xff\xd8\xff"
    assert server.queries == [f"key={TOKEN}"]
    for name in ("TILECLASS_API_TOKEN", "TILECLASS_DATABASE_URL"):  # even when listed
        leaky = server.template + f"?t={{env:{name}}}"
        with pytest.raises(SourceError, match=rf"\{{env:{name}\}} is refused: tileclass's own TILECLASS_\* "
                                                "settings are never sent to a tile server"):
            UrlSource.at(leaky, settings=load_settings())
        # A job recorded elsewhere (or forged) with such a template: this host refuses to resolve it.
        forged = source_from_record({"kind": "url", "name": f"forged-{name.lower()}", "template": leaky})
        with pytest.raises(SourceError, match="is refused"):
            forged.reader(load_settings())
    monkeypatch.setenv("TILECLASS_SOURCE_ENV", "[]")  # a worker that does not list it: refused there too
    with pytest.raises(SourceError, match="is not allowed on this host"):
        source.reader(load_settings())
    assert server.queries == [f"key={TOKEN}"]  # nothing more was sent
    monkeypatch.setenv("TILECLASS_SOURCE_ENV", '["not a name"]')
    with pytest.raises(SettingsError, match="TILECLASS_SOURCE_ENV: 'not a name' is not an environment variable's"):
        load_settings()
