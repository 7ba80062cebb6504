"""`tileclass metrics` and `tileclass worker --metrics-port` as a user runs them: the server answers, stops on
SIGTERM with exit 0, and a port already taken is one line with exit code 2."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from producer.cli import app
from tests.integration.faults.harness import free_port


def test_metrics_once_prints_the_up_gauges_and_the_queue_depths_of_the_embedded_default(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)

    result = CliRunner().invoke(app, ["metrics", "--once"])

    assert result.exit_code == 0, result.output
    assert 'tileclass_up{component="broker"} 1.0' in result.stdout
    assert 'tileclass_up{component="database"} 1.0' in result.stdout
    assert 'tileclass_queue_batches{queue="classify"} 0.0' in result.stdout
    assert "tileclass_queue_unacked_batches" not in result.stdout  # only Redis keeps that count


def test_metrics_serves_on_loopback_and_stops_on_sigterm(tmp_path: Path, sqlite_url: str) -> None:
    port = free_port(19300)
    env = {"TILECLASS_DATABASE_URL": sqlite_url, "PATH": "/usr/bin:/bin"}
    server = subprocess.Popen([str(Path(sys.executable).parent / "tileclass"), "metrics", "--port", str(port)],
                              env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        text = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "tileclass_up" not in text:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                time.sleep(0.2)
        assert 'tileclass_up{component="database"} 1.0' in text
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=20)
        assert server.returncode == 0, output
        assert f"serving tileclass metrics on http://127.0.0.1:{port}/metrics" in output
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.parametrize("command", [["metrics"], ["worker", "--device", "cpu", "--processes", "1"]])
def test_a_metrics_port_in_use_is_one_line_and_exit_code_2(command: list[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        option = "--port" if command[0] == "metrics" else "--metrics-port"

        result = CliRunner().invoke(app, [*command, option, str(port)])

    assert result.exit_code == 2, result.output
    assert result.output.strip() == (f"Error: cannot serve metrics on 127.0.0.1:{port} (Address already in use): "
                                      "choose another port with --metrics-port / --port")
