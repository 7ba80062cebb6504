"""Deployment settings, read once from ``TILECLASS_*`` environment variables and an optional ``.env`` file.

Everything a host needs to join a deployment lives here: where the results database and the broker are, which
tile roots this host mounts and under which names, where checkpoints live and which device to run on.
Credentials come only from here (env or ``.env``), never from code or command-line defaults.

Tile roots are named so that task messages carry ``(root name, relative path)`` and every worker host can mount
the same tiles wherever it likes::

    TILECLASS_TILE_ROOTS='{"ortho2024": "/mnt/tiles/ortho2024"}'

Named sources (``TILECLASS_SOURCES``) extend that to archives: ``tileclass enqueue @city2024`` reads the source
this host names ``city2024``, and each worker reads its own copy under the same name::

    TILECLASS_SOURCES='{"city2024": "/data/city2024.mbtiles", "ortho2024": "/mnt/tiles/ortho2024"}'
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from core.choices import DECODE_CHOICES, DEVICE_CHOICES, INFERENCE_PRECISIONS, is_device
from core.errors import SettingsError
from core.models.names import NAME_PATTERN

ENV_PREFIX = "TILECLASS_"
EMBEDDED_BROKER = "filesystem://"
ENV_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Settings(BaseSettings):
    """One deployment's configuration; see the module docstring for the environment variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///tileclass.db",
        description="SQLAlchemy URL of the results database (SQLite file by default, postgresql+psycopg://… at scale).",
    )
    broker_url: str = Field(
        default=EMBEDDED_BROKER,
        description="Celery broker: 'filesystem://' is the embedded broker under data_dir, or redis://…",
    )
    data_dir: Path = Field(default=Path(".tileclass"), description="Local state: the embedded broker's folders.")
    visibility_timeout: int = Field(
        default=3600, ge=10, description="Seconds before an unacknowledged Redis message is redelivered."
    )
    tile_roots: dict[str, Path] = Field(default_factory=dict, description="Tile root name -> path on this host.")
    sources: dict[str, str] = Field(
        default_factory=dict,
        description="Named tile sources, name -> folder, .mbtiles or .pmtiles path on this host, or a tile URL "
                    "template ('@NAME' on the command line); they extend tile_roots.",
    )
    tile_cache: Path | None = Field(
        default=None, description="Workers: a folder keeping tiles fetched from tile servers, so a rerun downloads "
                                  "nothing again (unset: no cache).")
    source_env: list[str] = Field(
        default_factory=list,
        description="Environment variables a tile URL template may read as {env:VAR} on this host (JSON list of "
                    "names, e.g. [\"MAPTOKEN\"]); a template naming any other is refused, and TILECLASS_* never "
                    "reach a tile server.",
    )
    fetch_deadline: float = Field(
        default=60, ge=1, le=3600,
        description="Seconds one tile fetch from a tile server may take in all (retries and waits included); "
                    "past it the server is too slow: a host problem, no tile fails.",
    )
    model_dir: Path = Field(default=Path("models"), description="Where checkpoints are stored and found by hash.")
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N.")
    max_queued_batches: int = Field(
        default=64, ge=1, description="Backpressure: most batches a producer lets wait in the broker."
    )
    # Worker tuning; `tileclass worker` options reach its child processes through these variables.
    worker_batch_size: int = Field(
        default=16, ge=1, le=4096, description="Tiles per forward pass (a task's batch is run in chunks of this size)."
    )
    worker_threads: int = Field(default=0, ge=0, description="Torch CPU threads per worker process (0: automatic).")
    worker_decode_threads: int = Field(default=2, ge=1, le=64, description="Threads per worker decoding ahead.")
    worker_decode: str = Field(
        default="auto", description="Where JPEG tiles are decoded: auto (on the GPU when the model runs on CUDA), "
                                    "cpu, or gpu (nvJPEG; other formats and refused tiles fall back to the CPU).")
    worker_compile: bool = Field(default=True, description="torch.compile the model in workers (slow first batch).")
    worker_precision: str = Field(
        default="auto", description="auto (bf16 where the hardware has it), fp32, bf16 or int8 (CPU only)."
    )
    worker_max_retries: int = Field(
        default=3, ge=0, le=20, description="Retries of a failing batch before its tiles are recorded as failed."
    )
    worker_model_cache: int = Field(default=2, ge=1, le=16, description="Models each worker process keeps loaded.")
    worker_tta: bool = Field(
        default=False, description="Test-time augmentation: average each tile's probabilities over flipped and "
                                   "turned copies (worker_tta_views forward passes per tile instead of one).")
    worker_tta_views: int = Field(default=8, description="With worker_tta: 2, 4 or 8 views (model/tta.py).")
    train_lease_seconds: float = Field(
        default=120, ge=3, le=3600,
        description="Seconds a training job's lease lasts (renewed every third of it); unrenewed, the run is lost.",
    )
    worker_max_pixels: int = Field(
        default=4096 * 4096, ge=256 * 256, le=100_000_000,
        description="Largest image (width x height) a worker decodes; a tile declaring more fails as too large.",
    )
    min_coverage: float = Field(
        default=0.5, ge=0, le=1,  # model.inputs.DEFAULT_MIN_COVERAGE
        description="Share of a tile's pixels that must hold data (alpha > 0, not nodata) for it to be classified; "
                    "below it the tile is recorded as empty ('partial: 6% data').",
    )
    worker_host_cooldown: float = Field(
        default=60, ge=1, le=3600,
        description="Seconds a worker pauses a job after a problem of its own host with it (e.g. its root missing).",
    )
    worker_idle_warning: float = Field(
        default=60, ge=0, le=86400,
        description="Seconds after which a worker that has had no task, and whose results database holds no job, "
                    "warns that it may not share the producer's broker and database; 0: never.",
    )
    # Prometheus metrics (docs: README "Metrics"); the servers bind to loopback unless told otherwise.
    worker_metrics_port: int = Field(
        default=0, ge=0, le=65535,
        description="Workers: serve Prometheus metrics on this port (`tileclass worker --metrics-port`); 0: none.",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address the metrics servers listen on (workers, `tileclass metrics`); 0.0.0.0 for a scraper "
                    "on another host.",
    )
    worker_task_events: bool = Field(
        default=False,
        description="Workers send Celery task events from the start (Flower's task list); Flower also switches "
                    "them on in the workers it sees.",
    )

    # The HTTP server (`tileclass serve`, api/).
    api_token: SecretStr | None = Field(
        default=None,
        description="Token every HTTP API request must carry (bearer header, or the map page's cookie); required "
                    "to serve on an address other than loopback. Never logged.",
    )
    api_cors_origins: list[str] = Field(
        default_factory=list,
        description="Web origins whose pages may call the HTTP API from a browser (JSON list; `serve --cors-origin`); "
                    "none: CORS off.",
    )
    api_json_limit: int = Field(
        default=10_000, ge=1, le=10_000_000,
        description="Most tiles /api/bbox answers as one JSON document (format=json); geojson and csv stream any size.",
    )
    basemap_url: str | None = Field(default=None, description="The map page's background around a job: an http(s) "
                                    "tile URL template ({z}, {x}, {y}) that browsers fetch; unset: none.")
    basemap_attribution: str = Field(default="", description="The basemap's credit line; unset: its host name.")

    @field_validator("device")
    @classmethod
    def _valid_device(cls, value: str) -> str:
        if not is_device(value):
            raise ValueError(f"must be one of {DEVICE_CHOICES} (got {value!r})")
        return value

    @field_validator("worker_decode", "worker_precision")
    @classmethod
    def _one_of_its_choices(cls, value: str, info: ValidationInfo) -> str:
        choices = {"worker_decode": DECODE_CHOICES, "worker_precision": INFERENCE_PRECISIONS}[str(info.field_name)]
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)} (got {value!r})")
        return value

    @field_validator("api_token", mode="before")
    @classmethod
    def _unset_when_blank(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() in PLACEHOLDER_PASSWORDS:
            raise ValueError("it is the .env.example placeholder: set a real token in .env (API_TOKEN with docker "
                             "compose), e.g. from `openssl rand -hex 24`")
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("basemap_url", mode="before")
    @classmethod
    def _tile_template(cls, value: Any) -> Any:  # never echoed: a provider's template may hold its key
        value = value.strip() if isinstance(value, str) else value
        if value and not (value.startswith(("https://", "http://")) and all(f"{{{c}}}" in value for c in "zxy")):
            raise ValueError("must be an http(s) tile URL template with {z}, {x} and {y}")
        return value or None

    @field_validator("worker_tta_views")
    @classmethod
    def _valid_tta_views(cls, value: int) -> int:
        if value not in (2, 4, 8):
            raise ValueError(f"must be 2, 4 or 8 (got {value})")
        return value

    @field_validator("database_url")
    @classmethod
    def _valid_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError(f"must be a sqlite:/// or postgresql+psycopg:// URL (got {_without_password(value)!r})")
        return _no_placeholder(value)

    @field_validator("broker_url")
    @classmethod
    def _valid_broker(cls, value: str) -> str:
        if not value.startswith(("filesystem://", "redis://", "rediss://", "memory://", "amqp://")):
            raise ValueError(f"must be filesystem:// (embedded), redis://…, rediss://… (TLS) or amqp://… "
                             f"(got {_without_password(value)!r})")
        return _no_placeholder(value)

    @field_validator("tile_roots", "sources")
    @classmethod
    def _valid_roots(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not NAME_PATTERN.match(name):
                raise ValueError(f"name {name!r} must be letters, digits, '.', '_' or '-'")
        return value

    @field_validator("source_env")
    @classmethod
    def _variable_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not ENV_VARIABLE.match(name):
                raise ValueError(f"{name!r} is not an environment variable's name (letters, digits and '_')")
        return value

    @property
    def is_embedded_broker(self) -> bool:
        return self.broker_url.startswith(EMBEDDED_BROKER)

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"


def env_name(setting: str) -> str:
    """The environment variable of a setting: ``worker_batch_size`` -> ``TILECLASS_WORKER_BATCH_SIZE``."""
    if setting not in Settings.model_fields:
        raise KeyError(f"no setting named {setting!r}")
    return ENV_PREFIX + setting.upper()


def is_own_variable(name: str) -> bool:
    """Whether an environment variable is one of tileclass's settings (``TILECLASS_*``)."""
    return name.startswith(ENV_PREFIX)


PLACEHOLDER_PASSWORDS = frozenset({"change-me"})  # what .env.example ships with


def _no_placeholder(url: str) -> str:
    if urlsplit(url).password in PLACEHOLDER_PASSWORDS:
        raise ValueError("its password is the .env.example placeholder: set a real one in .env "
                         "(REDIS_PASSWORD / POSTGRES_PASSWORD with docker compose)")
    return url


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def load_settings() -> Settings:
    """Read the settings now, turning a validation error into one line that names the setting."""
    try:
        return Settings()
    except PydanticSettingsError as exc:  # a value that is not even JSON where JSON is needed
        field = str(exc).split('"')[1] if '"' in str(exc) else "settings"
        example = ' (a JSON object: {"ortho": "/mnt/ortho"})' if field in ("tile_roots", "sources") else ""
        raise SettingsError(f"{ENV_PREFIX}{field.upper()}: not valid JSON{example}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"{ENV_PREFIX}{field.upper()}: {message}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after changing the environment)."""
    return load_settings()
