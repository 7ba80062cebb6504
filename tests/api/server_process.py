"""A real ``tileclass serve`` process on a free loopback port, for the tests that need a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Server:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_server(database_url: str, log: Path, *, env: dict[str, str] | None = None,
                   args: tuple[str, ...] = ()) -> Iterator[Server]:
    """``tileclass serve`` on 127.0.0.1 against ``database_url``, its output in ``log``, stopped afterwards."""
    port = free_port()
    environment = {**os.environ, "TILECLASS_DATABASE_URL": database_url, **(env or {})}
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "producer", "serve", "--port", str(port), *args],
                                   env=environment, stdout=sink, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", log, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"tileclass serve did not start:\n{server.output()}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
