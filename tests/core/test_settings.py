import re
from operator import attrgetter
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from core.errors import SettingsError
from core.settings import ENV_PREFIX, Settings, env_name, load_settings, variables

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_embedded() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///tileclass.db"
    assert settings.is_embedded_broker
    assert settings.device == "auto"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_BROKER_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("TILECLASS_VISIBILITY_TIMEOUT", "120")
    monkeypatch.setenv("TILECLASS_TILE_ROOTS", '{"ortho": "/mnt/ortho"}')
    settings = load_settings()
    assert not settings.is_embedded_broker
    assert settings.visibility_timeout == 120
    assert settings.sources.roots == {"ortho": Path("/mnt/ortho")}


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TILECLASS_DEVICE=cuda:1\n")
    assert load_settings().device == "cuda:1"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("TILECLASS_DEVICE", "gpu", "TILECLASS_DEVICE: must be one of auto, cpu, cuda or cuda:N"),
        ("TILECLASS_VISIBILITY_TIMEOUT", "soon", "TILECLASS_VISIBILITY_TIMEOUT"),
        ("TILECLASS_DATABASE_URL", "mysql://x", "TILECLASS_DATABASE_URL: must be a sqlite:///"),
        ("TILECLASS_BROKER_URL", "kafka://x", "TILECLASS_BROKER_URL"),
        ("TILECLASS_TILE_ROOTS", '{"bad name": "/x"}', "TILECLASS_TILE_ROOTS"),
    ],
)
def test_bad_value_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(expected)
    assert "\n" not in message


# Every variable, a value other than its default, where it lands and as what (the interface is README's table).
EVERY_VARIABLE: dict[str, tuple[str, str, Any]] = {
    "TILECLASS_DATABASE_URL": ("postgresql+psycopg://tc@127.0.0.1/tc", "database_url",
                               "postgresql+psycopg://tc@127.0.0.1/tc"),
    "TILECLASS_BROKER_URL": ("redis://127.0.0.1:6379/3", "broker_url", "redis://127.0.0.1:6379/3"),
    "TILECLASS_DATA_DIR": ("/var/lib/tileclass", "data_dir", Path("/var/lib/tileclass")),
    "TILECLASS_VISIBILITY_TIMEOUT": ("120", "visibility_timeout", 120),
    "TILECLASS_MODEL_DIR": ("/srv/models", "model_dir", Path("/srv/models")),
    "TILECLASS_DEVICE": ("cuda:1", "device", "cuda:1"),
    "TILECLASS_MAX_QUEUED_BATCHES": ("8", "max_queued_batches", 8),
    "TILECLASS_MIN_COVERAGE": ("0.25", "min_coverage", 0.25),
    "TILECLASS_TRAIN_LEASE_SECONDS": ("30", "train_lease_seconds", 30.0),
    "TILECLASS_TILE_ROOTS": ('{"ortho": "/mnt/ortho"}', "sources.roots", {"ortho": Path("/mnt/ortho")}),
    "TILECLASS_SOURCES": ('{"city": "/data/city.mbtiles"}', "sources.named", {"city": "/data/city.mbtiles"}),
    "TILECLASS_TILE_CACHE": ("/var/cache/tileclass", "sources.cache", Path("/var/cache/tileclass")),
    "TILECLASS_SOURCE_ENV": ('["MAPTOKEN"]', "sources.env", ["MAPTOKEN"]),
    "TILECLASS_FETCH_DEADLINE": ("30", "sources.fetch_deadline", 30.0),
    "TILECLASS_WORKER_BATCH_SIZE": ("64", "worker.batch_size", 64),
    "TILECLASS_WORKER_THREADS": ("3", "worker.threads", 3),
    "TILECLASS_WORKER_DECODE_THREADS": ("4", "worker.decode_threads", 4),
    "TILECLASS_WORKER_DECODE": ("cpu", "worker.decode", "cpu"),
    "TILECLASS_WORKER_COMPILE": ("false", "worker.compile", False),
    "TILECLASS_WORKER_PRECISION": ("fp32", "worker.precision", "fp32"),
    "TILECLASS_WORKER_MAX_RETRIES": ("5", "worker.max_retries", 5),
    "TILECLASS_WORKER_MODEL_CACHE": ("4", "worker.model_cache", 4),
    "TILECLASS_WORKER_TTA": ("true", "worker.tta", True),
    "TILECLASS_WORKER_TTA_VIEWS": ("4", "worker.tta_views", 4),
    "TILECLASS_WORKER_MAX_PIXELS": ("1000000", "worker.max_pixels", 1_000_000),
    "TILECLASS_WORKER_HOST_COOLDOWN": ("5", "worker.host_cooldown", 5.0),
    "TILECLASS_WORKER_IDLE_WARNING": ("0", "worker.idle_warning", 0.0),
    "TILECLASS_WORKER_METRICS_PORT": ("9101", "worker.metrics_port", 9101),
    "TILECLASS_WORKER_TASK_EVENTS": ("true", "worker.task_events", True),
    "TILECLASS_API_TOKEN": ("a-token-of-twenty-chars", "api.token", SecretStr("a-token-of-twenty-chars")),
    "TILECLASS_API_CORS_ORIGINS": ('["https://maps.example.org"]', "api.cors_origins", ["https://maps.example.org"]),
    "TILECLASS_API_JSON_LIMIT": ("500", "api.json_limit", 500),
    "TILECLASS_BASEMAP_URL": ("https://tiles.example/{z}/{x}/{y}.png", "basemap.url",
                              "https://tiles.example/{z}/{x}/{y}.png"),
    "TILECLASS_BASEMAP_ATTRIBUTION": ("© Example", "basemap.attribution", "© Example"),
    "TILECLASS_METRICS_HOST": ("0.0.0.0", "metrics.host", "0.0.0.0"),
}
TABLE_ROW = re.compile(r"^\| `(TILECLASS_[A-Z_]+)` \|", re.MULTILINE)


def test_every_variable_of_the_readme_is_a_setting_here_and_every_setting_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = set(TABLE_ROW.findall(readme))
    assert len(table) > 20 and table <= set(EVERY_VARIABLE)
    assert {ENV_PREFIX + flat.upper() for flat in variables()} == set(EVERY_VARIABLE)
    assert [name for name in EVERY_VARIABLE if f"`{name}`" not in readme] == []  # the table, or "Run workers"


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_every_variable_is_read_into_its_group(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str) -> None:
    if where == "environment":
        for name, (value, _, _) in EVERY_VARIABLE.items():
            monkeypatch.setenv(name, value)
    else:
        lines = [f"{name}='{value}'" for name, (value, _, _) in EVERY_VARIABLE.items()]
        (tmp_path / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = load_settings()
    for name, (_, path, expected) in EVERY_VARIABLE.items():
        assert attrgetter(path)(settings) == expected, name
        assert env_name(path) == name
    assert not settings.is_embedded_broker and settings.api.token is not None
    assert settings.api.token.get_secret_value() == "a-token-of-twenty-chars"


def test_defaults_are_the_groups_own_and_only_what_was_set_counts_as_set(tmp_path: Path) -> None:
    """``tileclass worker`` gives GPU children a larger batch unless TILECLASS_WORKER_BATCH_SIZE was set."""
    settings = load_settings()
    assert (settings.worker.batch_size, settings.worker.tta_views, settings.sources.roots) == (16, 8, {})
    assert (settings.api.token, settings.basemap.url, settings.metrics.host) == (None, None, "127.0.0.1")
    assert "batch_size" not in settings.worker.model_fields_set
    (tmp_path / ".env").write_text("TILECLASS_WORKER_BATCH_SIZE=16\n")
    assert load_settings().worker.model_fields_set == {"batch_size"}


def test_the_environment_wins_over_dotenv_and_arguments_over_both(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TILECLASS_WORKER_BATCH_SIZE=8\nTILECLASS_WORKER_TTA=true\n")
    monkeypatch.setenv("TILECLASS_WORKER_BATCH_SIZE", "32")
    settings = load_settings()
    assert (settings.worker.batch_size, settings.worker.tta) == (32, True)
    given = Settings(worker={"batch_size": 4})
    assert (given.worker.batch_size, given.worker.tta) == (4, True)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("TILECLASS_WORKER_TTA_VIEWS", "3", "TILECLASS_WORKER_TTA_VIEWS: must be 2, 4 or 8 (got 3)"),
        ("TILECLASS_WORKER_BATCH_SIZE", "zero", "TILECLASS_WORKER_BATCH_SIZE: "),
        ("TILECLASS_WORKER_PRECISION", "fp8", "TILECLASS_WORKER_PRECISION: must be one of auto, fp32, bf16, int8"),
        ("TILECLASS_API_JSON_LIMIT", "0", "TILECLASS_API_JSON_LIMIT: "),
        ("TILECLASS_API_TOKEN", "change-me", "TILECLASS_API_TOKEN: it is the .env.example placeholder"),
        ("TILECLASS_API_CORS_ORIGINS", "https://maps.example.org", "TILECLASS_API_CORS_ORIGINS: not valid JSON"),
        ("TILECLASS_SOURCES", '{"bad name": "/x"}', "TILECLASS_SOURCES: name 'bad name' must be letters"),
        ("TILECLASS_SOURCES", "/data/city.mbtiles", 'TILECLASS_SOURCES: not valid JSON (a JSON object: {"ortho"'),
        ("TILECLASS_TILE_ROOTS", "{", "TILECLASS_TILE_ROOTS: not valid JSON (a JSON object"),
        ("TILECLASS_SOURCE_ENV", '["MAP-TOKEN"]', "TILECLASS_SOURCE_ENV: 'MAP-TOKEN' is not an environment variable"),
        ("TILECLASS_FETCH_DEADLINE", "0", "TILECLASS_FETCH_DEADLINE: "),
        ("TILECLASS_BASEMAP_URL", "ftp://tiles.example/{z}/{x}/{y}", "TILECLASS_BASEMAP_URL: must be an http(s) tile"),
        ("TILECLASS_WORKER_METRICS_PORT", "70000", "TILECLASS_WORKER_METRICS_PORT: "),
    ],
)
@pytest.mark.parametrize("where", ["environment", ".env"])
def test_a_bad_value_in_a_group_names_its_flat_variable_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str, name: str, value: str, expected: str
) -> None:
    if where == "environment":
        monkeypatch.setenv(name, value)
    else:
        (tmp_path / ".env").write_text(f"{name}='{value}'\n", encoding="utf-8")
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(expected) and "\n" not in message, message


def test_env_name_takes_a_settings_attribute_path() -> None:
    assert env_name("worker.batch_size") == "TILECLASS_WORKER_BATCH_SIZE"
    assert env_name("sources.roots") == "TILECLASS_TILE_ROOTS"
    assert env_name("sources.named") == "TILECLASS_SOURCES"
    assert env_name("device") == "TILECLASS_DEVICE"
    for unknown in ("worker", "worker_batch_size", "worker.nothing"):
        with pytest.raises(KeyError):
            env_name(unknown)
