"""A real loopback tile server for the tests: serves a z/x/y tree of tile files on 127.0.0.1, with faults injected
per tile, and counts what it was asked (paths and query strings, to check retries, caching and tokens)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# A fault, applied to one request of a tile: "404", "204", "500", "429:SECONDS" (with Retry-After), "slow:SECONDS",
# "truncate" (a Content-Length longer than the body), "drop" (close without answering), "html" (a wrong content
# type), "ftp" (a redirect to ftp://), "redirect:LOCATION" (a 302 to LOCATION), "drip:SECONDS" (the whole answer,
# status line and headers included, one byte every SECONDS: each wait inside any read timeout, the whole far
# longer). A tile's faults are used one per request, then it is served normally; "always:FAULT" applies FAULT to
# every request. ``dripping`` counts the drips under way.


class TileServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults: dict[str, list[str]] = {}
        self.requests: Counter[str] = Counter()
        self.queries: list[str] = []
        self.dripping = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    @property
    def template(self) -> str:
        return f"http://127.0.0.1:{self.port}/tiles/{{z}}/{{x}}/{{y}}.jpg"

    def fault(self, tile: str, *faults: str) -> None:
        """Faults for tile ``"z/x/y"``, one per request from now on."""
        self.faults[tile] = list(faults)

    def _next_fault(self, tile: str) -> str | None:
        with self._lock:
            self.requests[tile] += 1
            queued = self.faults.get(tile)
            if not queued:
                return None
            if queued[0].startswith("always:"):
                return queued[0].removeprefix("always:")
            return queued.pop(0)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                server.queries.append(parts.query)
                tile = parts.path.removeprefix("/tiles/").removesuffix(".jpg")
                fault = server._next_fault(tile)
                file = server.root / f"{tile}.jpg"
                if fault is None:
                    self._send(200, file.read_bytes() if file.is_file() else None)
                elif fault in ("404", "204", "500"):
                    self._send(int(fault), b"" if fault == "204" else b"not here")
                elif fault.startswith("429:"):
                    self._send(429, b"slow down", {"Retry-After": fault.split(":")[1]})
                elif fault.startswith("slow:"):
                    time.sleep(float(fault.split(":")[1]))
                    self._send(200, file.read_bytes())
                elif fault == "truncate":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(file.stat().st_size))
                    self.end_headers()
                    self.wfile.write(file.read_bytes()[:100])
                    self.close_connection = True
                elif fault == "drop":
                    self.close_connection = True
                elif fault == "html":
                    self._send(200, b"<html>login</html>", {"Content-Type": "text/html"})
                elif fault == "ftp":
                    self._send(302, b"", {"Location": "ftp://127.0.0.1/tile.jpg"})
                elif fault.startswith("redirect:"):
                    self._send(302, b"", {"Location": fault.removeprefix("redirect:")})
                elif fault.startswith("drip:"):
                    self._drip(file.read_bytes(), float(fault.split(":")[1]))

            def _drip(self, body: bytes, every: float) -> None:
                answer = (f"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {len(body)}\r\n\r\n"
                          .encode() + body)
                self.close_connection = True
                with server._lock:
                    server.dripping += 1
                try:
                    for byte in answer:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(every)
                except OSError:  # the client went away: stop dripping
                    pass
                finally:
                    with server._lock:
                        server.dripping -= 1

            def _send(self, status: int, body: bytes | None, headers: dict[str, str] | None = None) -> None:
                if body is None:
                    status, body = 404, b"no such tile"
                self.send_response(status)
                for name, value in ({"Content-Type": "image/jpeg"} | (headers or {})).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@contextmanager
def serving(root: Path) -> Iterator[TileServer]:
    """A tile server for the tree under ``root`` while the block runs."""
    tiles = TileServer(root)
    thread = threading.Thread(target=tiles.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tiles
    finally:
        tiles.server.shutdown()
        tiles.server.server_close()
