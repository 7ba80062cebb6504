"""Flower, the optional `flower` extra, as docker-compose.yml runs it (no Docker engine here): the compose file's
Flower command, on a free loopback port, against a real worker on a real Redis. Flower must list the worker and,
once it has switched task events on, the tasks it ran; without the password it answers 401."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from core.celery_app import connected_app
from core.messages import CLASSIFY_TASK
from core.settings import get_settings
from tests.conftest import REPO_ROOT
from tests.integration.faults.harness import free_port
from tests.worker.support import running, start_celery, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PASSWORD = "flower-test-password"


def compose_flower_command(port: int) -> list[str]:
    """The flower service's command from docker-compose.yml, on ``port`` and bound to loopback."""
    service = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]["flower"]
    command = [f"--port={port}" if part.startswith("--port=") else part for part in service["command"]]
    assert command[:4] == ["celery", "--app", "worker.app", "flower"], command
    assert service["environment"]["FLOWER_BASIC_AUTH"].startswith("flower:${FLOWER_PASSWORD")
    return [str(Path(sys.executable).parent / "celery"), *command[1:], "--address=127.0.0.1"]


def poll(url: str, check: Any, *, timeout: float, logs: tuple[Path, ...]) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, auth=("flower", PASSWORD), timeout=10)
            last = response.json() if response.status_code == 200 else response.status_code
            if response.status_code == 200 and check(last):
                return last
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs if log.exists())
    raise AssertionError(f"timed out waiting on {url}; last answer: {last!r}\n{tails}")


def test_the_compose_flower_command_lists_a_real_worker_and_its_tasks(tmp_path: Path, redis_url: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"broker_url": redis_url, "database_url": f"sqlite:///{tmp_path / 'results.db'}",
                "data_dir": tmp_path / "state", "worker_task_events": "true"}
    env = worker_env(**settings)
    worker = start_celery(env, cwd=tmp_path, name="flowertest")
    port = free_port(19400)
    flower_log = tmp_path / "flower.log"
    with flower_log.open("ab") as log:
        flower = subprocess.Popen(compose_flower_command(port), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                  env=env | {"FLOWER_BASIC_AUTH": f"flower:{PASSWORD}",
                                             "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin"})
    logs = (flower_log, tmp_path / "flowertest.log")
    base = f"http://127.0.0.1:{port}"
    with running(worker), running(flower):
        workers = poll(f"{base}/api/workers?refresh=1", lambda found: any(name.startswith("flowertest@")
                                                                          for name in found), timeout=120, logs=logs)
        (name,) = [name for name in workers if name.startswith("flowertest@")]
        assert "classify" in {queue["name"] for queue in workers[name]["active_queues"]}
        assert CLASSIFY_TASK in workers[name]["registered"]

        for key, value in settings.items():
            monkeypatch.setenv(f"TILECLASS_{key.upper()}", str(value))
        get_settings.cache_clear()
        sent = connected_app(get_settings()).send_task(CLASSIFY_TASK, kwargs={"batch": {"not": "a batch"}})
        # TILECLASS_WORKER_TASK_EVENTS: the worker sends task events from its start, so Flower lists the task.
        tasks = poll(f"{base}/api/tasks", lambda found: found.get(sent.id, {}).get("state") == "SUCCESS",
                     timeout=90, logs=logs)
        assert tasks[sent.id]["name"] == CLASSIFY_TASK and tasks[sent.id]["worker"] == name
        assert httpx.get(f"{base}/api/workers", timeout=10).status_code == 401  # no password, no data


def test_flower_refuses_the_placeholder_password_in_one_line(tmp_path: Path, redis_url: str) -> None:
    """``FLOWER_BASIC_AUTH=flower:change-me`` (FLOWER_PASSWORD left as .env.example has it) let anyone in with the
    placeholder; now Flower stops before it listens, with one line."""
    port = free_port(19450)
    env = worker_env(broker_url=redis_url, database_url=f"sqlite:///{tmp_path / 'results.db'}",
                     data_dir=tmp_path / "state")
    flower = subprocess.Popen(compose_flower_command(port), cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env | {"FLOWER_BASIC_AUTH": "flower:change-me"})
    with running(flower):
        deadline = time.monotonic() + 60
        while flower.poll() is None and time.monotonic() < deadline:
            try:  # it must never let the placeholder in, however long it runs
                answer = httpx.get(f"http://127.0.0.1:{port}/api/workers", auth=("flower", "change-me"), timeout=5)
                assert answer.status_code != 200, "Flower let the placeholder password in"
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        assert flower.returncode == 2
        assert flower.stderr is not None and flower.stderr.read().decode().strip().splitlines() == [
            "cannot start: FLOWER_BASIC_AUTH: the password of user 'flower' is the .env.example placeholder: set "
            "FLOWER_PASSWORD in .env (docker compose), e.g. from `openssl rand -hex 24`"]
