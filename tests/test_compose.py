"""docker-compose.yml is valid for a real compose parser and every service runs a real tileclass command.

Docker does not run on the development machines; Debian's docker-compose parses and validates the file
without an engine (scripts/services.sh installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from producer.cli import app
from tests.conftest import REPO_ROOT


def _compose_config(tmp_path: Path, env: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed: run scripts/services.sh (it installs Debian's package)")
    (tmp_path / ".env").write_text(env)
    return subprocess.run(
        ["docker-compose", "--project-directory", str(tmp_path), "-f", str(REPO_ROOT / "docker-compose.yml"),
         "config"], capture_output=True, text=True, timeout=60,
    )


def _mount_targets(volumes: list[Any]) -> list[str]:
    """Targets of short ("src:target:mode") or long ({"target": ...}) volume entries."""
    return [str(v["target"]) if isinstance(v, dict) else str(v).split(":")[1] for v in volumes]


@pytest.fixture
def compose(tmp_path: Path) -> dict[str, Any]:
    result = _compose_config(tmp_path, (REPO_ROOT / ".env.example").read_text())
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout))


def test_passwords_are_required(tmp_path: Path) -> None:
    result = _compose_config(tmp_path, "")
    assert result.returncode != 0
    assert "set REDIS_PASSWORD in .env" in result.stderr or "set POSTGRES_PASSWORD in .env" in result.stderr


def test_redis_is_durable_and_protected_and_its_password_is_not_in_its_arguments(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    script = redis["command"][-1]
    assert redis["command"][:2] == ["sh", "-c"] and "exec redis-server /tmp/redis-auth.conf" in script
    assert "--appendonly yes" in script and "--maxmemory-policy noeviction" in script
    assert "change-me" not in " ".join(redis["command"])  # the password reaches redis-server through a file
    assert "requirepass" in script and "$REDIS_PASSWORD" in script and redis["environment"]["REDIS_PASSWORD"]
    env = compose["services"]["worker-gpu0"]["environment"]
    assert env["TILECLASS_BROKER_URL"].startswith("redis://:change-me@")


def test_services_are_published_on_loopback_unless_told_otherwise(compose: dict[str, Any], tmp_path: Path) -> None:
    published = {name: service["ports"] for name, service in compose["services"].items() if service.get("ports")}
    assert set(published) == {"redis", "postgres", "flower", "metrics", "api"}
    for ports in published.values():
        assert all(str(port.get("host_ip") if isinstance(port, dict) else port).startswith("127.0.0.1")
                   for port in ports), ports
    flower = compose["services"]["flower"]["environment"]
    assert flower["FLOWER_BASIC_AUTH"] == "flower:change-me"
    assert "--basic-auth" not in " ".join(compose["services"]["flower"]["command"])
    env = (REPO_ROOT / ".env.example").read_text().replace("PUBLISH_ADDRESS=127.0.0.1", "PUBLISH_ADDRESS=10.0.0.5")
    result = _compose_config(tmp_path, env)
    assert result.returncode == 0, result.stderr
    multi = yaml.safe_load(result.stdout)["services"]
    assert any("10.0.0.5" in str(port) for port in multi["redis"]["ports"])


def test_every_tileclass_service_refuses_the_placeholder_passwords(compose: dict[str, Any]) -> None:
    from core.errors import SettingsError
    from core.settings import Settings, load_settings

    env = compose["services"]["worker-gpu0"]["environment"]
    for name in ("TILECLASS_BROKER_URL", "TILECLASS_DATABASE_URL"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(name, env[name])
            with pytest.raises(SettingsError, match=f"^{name}: its password is the .env.example placeholder"):
                load_settings()
    api_token = compose["services"]["api"]["environment"]["TILECLASS_API_TOKEN"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TILECLASS_API_TOKEN", api_token)
        with pytest.raises(SettingsError, match=r"^TILECLASS_API_TOKEN: it is the \.env\.example placeholder"):
            load_settings()
    assert Settings(broker_url="rediss://:s3cret@redis.example:6380/0").broker_url.startswith("rediss://")


def test_celery_run_directly_refuses_the_placeholder_passwords_in_one_line(compose: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    """The flower service's command and a plain Celery worker, with the environment the compose file gives them
    from .env.example: one line each (it was Celery's 39-line traceback of the import), before any connection."""
    celery = str(REPO_ROOT / ".venv/bin/celery")
    own = {name: value for name, value in os.environ.items() if not name.startswith(("TILECLASS_", "FLOWER_"))}
    flower, worker = compose["services"]["flower"], compose["services"]["worker-gpu0"]
    runs = [([celery, *flower["command"][1:], "--address=127.0.0.1"], flower["environment"],
             "FLOWER_BASIC_AUTH: the password of user 'flower' is the .env.example placeholder: set FLOWER_PASSWORD "
             "in .env (docker compose), e.g. from `openssl rand -hex 24`"),
            ([celery, "--app", "worker.app", "worker", "--pool", "solo"], worker["environment"],
             "TILECLASS_DATABASE_URL: its password is the .env.example placeholder: set a real one in .env "
             "(REDIS_PASSWORD / POSTGRES_PASSWORD with docker compose)")]
    for argv, environment, problem in runs:
        result = subprocess.run(argv, env=own | {name: str(value) for name, value in environment.items()},
                                cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [f"cannot start: {problem}"], result.stderr


def test_postgres_has_healthcheck_and_volume(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "/var/lib/postgresql/data" in _mount_targets(postgres["volumes"])
    assert compose["services"]["migrate"]["command"] == ["tileclass", "db", "upgrade"]


def test_each_gpu_worker_reserves_its_own_device(compose: dict[str, Any]) -> None:
    reserved = []
    for name, service in compose["services"].items():
        if name.startswith("worker-gpu"):
            (device,) = service["deploy"]["resources"]["reservations"]["devices"]
            assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
            reserved.extend(device["device_ids"])
            assert service["environment"]["TILECLASS_TILE_ROOTS"] == '{"tiles": "/tiles", "train-data": "/train-data"}'
            assert "/tiles" in _mount_targets(service["volumes"])
    assert sorted(reserved) == ["0", "1"]


def test_every_service_command_is_a_real_command(compose: dict[str, Any]) -> None:
    checked = 0
    for name, service in compose["services"].items():
        argv = list(service.get("entrypoint") or []) + list(service.get("command") or [])
        if service.get("image") != "tileclass:latest":
            continue
        if argv[0] == "tileclass":
            result = CliRunner().invoke(app, [*argv[1:], "--help"])
            assert result.exit_code == 0, f"{name}: {argv} is not a valid tileclass command:\n{result.output}"
        else:
            assert argv[:3] == ["celery", "--app", "worker.app"], name
            celery = subprocess.run([str(REPO_ROOT / ".venv/bin/celery"), "--app", "worker.app", "report"],
                                    capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
            assert celery.returncode == 0, celery.stderr
        checked += 1
    assert checked == 8


def test_workers_export_metrics_and_the_exporter_runs_with_the_monitoring_profile(compose: dict[str, Any]) -> None:
    for name in ("worker-gpu0", "worker-gpu1"):
        command = compose["services"][name]["command"]
        assert command[command.index("--metrics-port") + 1] == "9560", name
    metrics = compose["services"]["metrics"]
    assert metrics["command"][:2] == ["tileclass", "metrics"] and metrics["profiles"] == ["monitoring"]
    assert metrics["environment"]["TILECLASS_DATABASE_URL"] == compose["services"]["migrate"]["environment"][
        "TILECLASS_DATABASE_URL"]


def test_the_api_needs_its_token_and_is_published_on_loopback(compose: dict[str, Any], tmp_path: Path) -> None:
    api = compose["services"]["api"]
    assert api["command"] == ["tileclass", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert api["environment"]["TILECLASS_DATABASE_URL"] == compose["services"]["migrate"]["environment"][
        "TILECLASS_DATABASE_URL"]
    assert [str(port).removesuffix("/tcp") for port in api["ports"]] == ["127.0.0.1:8000:8000"]
    assert "/tiles" in _mount_targets(api["volumes"])
    without = (REPO_ROOT / ".env.example").read_text().replace("API_TOKEN=change-me\n", "")
    result = _compose_config(tmp_path, without)
    assert result.returncode != 0 and "set API_TOKEN in .env" in result.stderr
