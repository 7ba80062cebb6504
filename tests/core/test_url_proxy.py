"""Tile fetches go through the proxy the environment names (``HTTP_PROXY``, ``NO_PROXY``), as httpx clients do, and
keep their deadline through it: a real forwarding proxy and a real tile server, both on 127.0.0.1."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from core.settings import load_settings
from core.sources.base import SourceDown
from core.sources.url import UrlSource
from core.tiles import Tile
from tests.tile_server import TileServer, serving
from tests.worker.support import tile_tree

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class ForwardingProxy:
    """An HTTP forward proxy: takes a request in absolute form, asks its server (on 127.0.0.1 only) and answers with
    what the server said; ``seen`` lists the URLs it forwarded."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                target = urlsplit(self.path)
                proxy.seen.append(self.path)
                if target.hostname != "127.0.0.1":  # this proxy sends no traffic anywhere else
                    self.send_error(403)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
                try:
                    upstream.request("GET", target.path + (f"?{target.query}" if target.query else ""))
                    answer = upstream.getresponse()
                    body = answer.read()
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.getheader("Content-Type") or "application/octet-stream")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    upstream.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def forwarding_proxy() -> Iterator[ForwardingProxy]:
    proxy = ForwardingProxy()
    thread = threading.Thread(target=proxy.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TileServer]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    root = tmp_path / "tiles"
    tile_tree(root, 2, zoom=5, x0=3, y0=7, width=1)  # served as /tiles/5/3/7.jpg and /tiles/5/3/8.jpg
    with serving(root) as tiles:
        yield tiles


def read(server: TileServer, z: int, x: int, y: int) -> bytes:
    settings = load_settings()
    return UrlSource.at(server.template, settings=settings).reader(settings).read(Tile(z, x, y))


def test_tile_fetches_go_through_the_proxy_the_environment_names(server: TileServer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with forwarding_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert read(server, 5, 3, 7) == (server.root / "5" / "3" / "7.jpg").read_bytes()
        assert proxy.seen == [f"http://127.0.0.1:{server.port}/tiles/5/3/7.jpg"]
        assert server.requests["5/3/7"] == 1


def test_no_proxy_sends_fetches_straight_to_the_server(server: TileServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with forwarding_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert read(server, 5, 3, 8) == (server.root / "5" / "3" / "8.jpg").read_bytes()
        assert (proxy.seen, server.requests["5/3/8"]) == ([], 1)


def test_a_fetch_keeps_its_deadline_through_a_proxy_that_drips(server: TileServer, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy's connection goes through the same deadline-aware layer as a direct one: a proxy sending a byte
    every 0.2 s (each inside any read timeout) ends the fetch at the deadline, as a host problem."""
    with serving(server.root) as dripping_proxy:  # serves the path of the absolute URL it is asked for
        dripping_proxy.fault("5/3/7", "always:drip:0.2")
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dripping_proxy.port}")
        monkeypatch.setenv("TILECLASS_FETCH_DEADLINE", "1.5")
        started = time.monotonic()
        with pytest.raises(SourceDown, match=r"tile server too slow: no whole answer within the 1.5 s deadline"):
            read(server, 5, 3, 7)
        assert time.monotonic() - started < 10
        assert (dripping_proxy.requests["5/3/7"], server.requests["5/3/7"]) == (1, 0)
