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

What the whole deployment shares sits at the top (``settings.database_url``, ``settings.broker_url``, …); the rest
is grouped (``core.settings_groups``): ``settings.worker``, ``settings.sources``, ``settings.api``,
``settings.basemap`` and ``settings.metrics``. The variables keep their flat names (``TILECLASS_WORKER_BATCH_SIZE``
is ``settings.worker.batch_size``, ``TILECLASS_TILE_ROOTS`` is ``settings.sources.roots``): pydantic-settings reads
them, from the environment and ``.env``, through a flat view of the settings (``variables``), and hands them over
in their groups.
"""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError, create_model, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as PydanticSettingsError

from core.choices import DEVICE_CHOICES, is_device
from core.errors import SettingsError
from core.settings_groups import (
    ENV_VARIABLE,
    PLACEHOLDER_PASSWORDS,
    ApiSettings,
    BasemapSettings,
    MetricsSettings,
    SourceSettings,
    WorkerSettings,
)

__all__ = ["EMBEDDED_BROKER", "ENV_PREFIX", "ENV_VARIABLE", "PLACEHOLDER_PASSWORDS", "Settings", "env_name",
           "get_settings", "is_own_variable", "load_settings", "variables"]

ENV_PREFIX = "TILECLASS_"
EMBEDDED_BROKER = "filesystem://"
_CONFIG = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")


class Settings(BaseSettings):
    """One deployment's configuration; see the module docstring for the environment variables."""

    model_config = _CONFIG

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
    model_dir: Path = Field(default=Path("models"), description="Where checkpoints are stored and found by hash.")
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N.")
    max_queued_batches: int = Field(
        default=64, ge=1, description="Backpressure: most batches a producer lets wait in the broker."
    )
    min_coverage: float = Field(
        default=0.5, ge=0, le=1,  # model.inputs.DEFAULT_MIN_COVERAGE
        description="Share of a tile's pixels that must hold data (alpha > 0, not nodata) for it to be classified; "
                    "below it the tile is recorded as empty ('partial: 6% data').",
    )
    train_lease_seconds: float = Field(
        default=120, ge=3, le=3600,
        description="Seconds a training job's lease lasts (renewed every third of it); unrenewed, the run is lost.",
    )
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    sources: SourceSettings = Field(default_factory=SourceSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    basemap: BasemapSettings = Field(default_factory=BasemapSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then the environment, then ``.env``: both read by the variables' flat names."""
        flat = _flat_view()
        return (init_settings, _Grouped(settings_cls, EnvSettingsSource(flat)),
                _Grouped(settings_cls, DotEnvSettingsSource(flat)))

    @field_validator("device")
    @classmethod
    def _valid_device(cls, value: str) -> str:
        if not is_device(value):
            raise ValueError(f"must be one of {DEVICE_CHOICES} (got {value!r})")
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

    @property
    def is_embedded_broker(self) -> bool:
        return self.broker_url.startswith(EMBEDDED_BROKER)

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"


def env_name(setting: str) -> str:
    """The environment variable of a setting, by its attribute path: ``worker.batch_size`` ->
    ``TILECLASS_WORKER_BATCH_SIZE``, ``sources.roots`` -> ``TILECLASS_TILE_ROOTS``, ``device`` -> ``TILECLASS_DEVICE``.
    """
    for flat, path in variables().items():
        if ".".join(path) == setting:
            return ENV_PREFIX + flat.upper()
    raise KeyError(f"no setting named {setting!r}")


@cache
def variables() -> dict[str, tuple[str, ...]]:
    """Every variable's flat name (without ``TILECLASS_``) and the attribute path of its setting:
    ``{"device": ("device",), "worker_batch_size": ("worker", "batch_size"), "tile_roots": ("sources", "roots")}``."""
    found: dict[str, tuple[str, ...]] = {}
    for name, field in Settings.model_fields.items():
        group = _group(field)
        if group is None:
            found[name] = (name,)
            continue
        for inner, inner_field in group.model_fields.items():
            found[str(inner_field.validation_alias or inner)] = (name, inner)
    return found


def _group(field: FieldInfo) -> type[BaseModel] | None:
    kind = field.annotation
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def _field(path: tuple[str, ...]) -> FieldInfo:
    fields = Settings.model_fields
    group = _group(fields[path[0]])
    return fields[path[0]] if group is None else group.model_fields[path[1]]


class _Variables(BaseSettings):
    model_config = _CONFIG


@cache
def _flat_view() -> type[BaseSettings]:
    """The settings as one flat class of the variables' names and types, which pydantic-settings' own environment
    and ``.env`` sources read (JSON for lists and maps, ``error parsing value for field "tile_roots"``)."""
    fields: dict[str, Any] = {flat: (_field(path).annotation, None) for flat, path in variables().items()}
    return create_model("TileclassVariables", __base__=_Variables, **fields)


class _Grouped(PydanticBaseSettingsSource):
    """The values a flat source found, handed over in their groups: ``{"worker": {"batch_size": "8"}}``."""

    def __init__(self, settings_cls: type[BaseSettings], flat: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.flat = flat

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads every variable at once

    def __call__(self) -> dict[str, Any]:
        found, nested = self.flat(), dict[str, Any]()
        for flat, path in variables().items():
            if flat in found:
                *groups, name = path
                target = nested
                for group in groups:
                    target = target.setdefault(group, {})
                target[name] = found[flat]
        return nested


def is_own_variable(name: str) -> bool:
    """Whether an environment variable is one of tileclass's settings (``TILECLASS_*``)."""
    return name.startswith(ENV_PREFIX)


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
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"{_variable_at(first['loc'])}: {message}") from None


def _variable_at(loc: tuple[int | str, ...]) -> str:
    """The variable an error's location is in: ``("worker", "batch_size")`` -> ``TILECLASS_WORKER_BATCH_SIZE``."""
    paths = {path: flat for flat, path in variables().items()}
    for end in range(len(loc), 0, -1):
        flat = paths.get(tuple(str(part) for part in loc[:end]))
        if flat is not None:
            return ENV_PREFIX + flat.upper()
    return ENV_PREFIX + (str(loc[0]) if loc else "settings").upper()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after changing the environment)."""
    return load_settings()
