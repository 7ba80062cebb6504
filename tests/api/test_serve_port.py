"""``tileclass serve`` binds its port before it says where it serves: a port in use is one line and exit 2, and
the "serving http://…" line comes only once connections are accepted. Loopback ports only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest
from typer.testing import CliRunner

from core.settings import get_settings
from producer.cli import app
from tests.api.server_process import free_port


def test_a_port_in_use_is_one_line_and_exit_2_without_a_serving_line(sqlite_url: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 2
    assert result.output == (f"Error: cannot serve on 127.0.0.1:{port}: the port is already in use (another "
                             "'tileclass serve'?); stop that server or choose another port with --port\n")


def test_the_serving_line_comes_once_the_port_accepts_connections(sqlite_url: str) -> None:
    port = free_port()
    env = {**os.environ, "TILECLASS_DATABASE_URL": sqlite_url}
    process = subprocess.Popen([sys.executable, "-m", "producer", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, process.kill)  # a server that never says so is stopped, and fails below
    watchdog.start()
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if line.startswith("tileclass serving"):
                break
        assert lines and lines[-1].startswith(f"tileclass serving http://127.0.0.1:{port}/"), "".join(lines)
        with socket.create_connection(("127.0.0.1", port), timeout=10):  # at once: no "connection refused"
            pass
    finally:
        watchdog.cancel()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
