"""The groups of ``core.settings.Settings``: ``settings.worker``, ``settings.sources``, ``settings.api``,
``settings.basemap`` and ``settings.metrics``.

Each field's environment variable stays the flat ``TILECLASS_*`` name that README's settings table documents: a
field's validation alias is that name without the prefix (``settings.worker.batch_size`` is
``TILECLASS_WORKER_BATCH_SIZE``, ``settings.sources.roots`` is ``TILECLASS_TILE_ROOTS``), and ``core.settings`` reads
the variables into the groups by it. In code the fields go by their names (``WorkerSettings(batch_size=8)``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from core.choices import DECODE_CHOICES, INFERENCE_PRECISIONS
from core.models.names import NAME_PATTERN

ENV_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PLACEHOLDER_PASSWORDS = frozenset({"change-me"})  # what .env.example ships with


def _prefixed(prefix: str) -> ConfigDict:
    """A group whose variables are ``TILECLASS_<PREFIX>_<FIELD>``; fields are also given by their names."""
    return ConfigDict(alias_generator=AliasGenerator(validation_alias=lambda name: f"{prefix}_{name}"),
                      validate_by_name=True)


class WorkerSettings(BaseModel):
    """Worker tuning (``TILECLASS_WORKER_*``); `tileclass worker` options reach its child processes through these
    variables."""

    model_config = _prefixed("worker")

    batch_size: int = Field(
        default=16, ge=1, le=4096, description="Tiles per forward pass (a task's batch is run in chunks of this size)."
    )
    threads: int = Field(default=0, ge=0, description="Torch CPU threads per worker process (0: automatic).")
    decode_threads: int = Field(default=2, ge=1, le=64, description="Threads per worker decoding ahead.")
    decode: str = Field(
        default="auto", description="Where JPEG tiles are decoded: auto (on the GPU when the model runs on CUDA), "
                                    "cpu, or gpu (nvJPEG; other formats and refused tiles fall back to the CPU).")
    compile: bool = Field(default=True, description="torch.compile the model in workers (slow first batch).")
    precision: str = Field(
        default="auto", description="auto (bf16 where the hardware has it), fp32, bf16 or int8 (CPU only)."
    )
    max_retries: int = Field(
        default=3, ge=0, le=20, description="Retries of a failing batch before its tiles are recorded as failed."
    )
    model_cache: int = Field(default=2, ge=1, le=16, description="Models each worker process keeps loaded.")
    tta: bool = Field(
        default=False, description="Test-time augmentation: average each tile's probabilities over flipped and "
                                   "turned copies (tta_views forward passes per tile instead of one).")
    tta_views: int = Field(default=8, description="With tta: 2, 4 or 8 views (model/tta.py).")
    max_pixels: int = Field(
        default=4096 * 4096, ge=256 * 256, le=100_000_000,
        description="Largest image (width x height) a worker decodes; a tile declaring more fails as too large.",
    )
    host_cooldown: float = Field(
        default=60, ge=1, le=3600,
        description="Seconds a worker pauses a job after a problem of its own host with it (e.g. its root missing).",
    )
    idle_warning: float = Field(
        default=60, ge=0, le=86400,
        description="Seconds after which a worker that has had no task, and whose results database holds no job, "
                    "warns that it may not share the producer's broker and database; 0: never.",
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535,
        description="Serve Prometheus metrics on this port (`tileclass worker --metrics-port`); 0: none.",
    )
    task_events: bool = Field(
        default=False,
        description="Send Celery task events from the start (Flower's task list); Flower also switches them on in "
                    "the workers it sees.",
    )

    @field_validator("decode", "precision")
    @classmethod
    def _one_of_its_choices(cls, value: str, info: ValidationInfo) -> str:
        choices = {"decode": DECODE_CHOICES, "precision": INFERENCE_PRECISIONS}[str(info.field_name)]
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)} (got {value!r})")
        return value

    @field_validator("tta_views")
    @classmethod
    def _valid_tta_views(cls, value: int) -> int:
        if value not in (2, 4, 8):
            raise ValueError(f"must be 2, 4 or 8 (got {value})")
        return value


class SourceSettings(BaseModel):
    """Where this host has its tiles: named roots and sources, the tile servers' cache, secrets and deadline."""

    model_config = ConfigDict(validate_by_name=True)

    roots: dict[str, Path] = Field(default_factory=dict, validation_alias="tile_roots",
                                   description="Tile root name -> path on this host.")
    named: dict[str, str] = Field(
        default_factory=dict, validation_alias="sources",
        description="Named tile sources, name -> folder, .mbtiles or .pmtiles path on this host, or a tile URL "
                    "template ('@NAME' on the command line); they extend the roots.",
    )
    cache: Path | None = Field(
        default=None, validation_alias="tile_cache",
        description="Workers: a folder keeping tiles fetched from tile servers, so a rerun downloads nothing again "
                    "(unset: no cache).")
    env: list[str] = Field(
        default_factory=list, validation_alias="source_env",
        description="Environment variables a tile URL template may read as {env:VAR} on this host (JSON list of "
                    "names, e.g. [\"MAPTOKEN\"]); a template naming any other is refused, and TILECLASS_* never "
                    "reach a tile server.",
    )
    fetch_deadline: float = Field(
        default=60, ge=1, le=3600,
        description="Seconds one tile fetch from a tile server may take in all (retries and waits included); "
                    "past it the server is too slow: a host problem, no tile fails.",
    )

    @field_validator("roots", "named")
    @classmethod
    def _valid_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not NAME_PATTERN.match(name):
                raise ValueError(f"name {name!r} must be letters, digits, '.', '_' or '-'")
        return value

    @field_validator("env")
    @classmethod
    def _variable_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not ENV_VARIABLE.match(name):
                raise ValueError(f"{name!r} is not an environment variable's name (letters, digits and '_')")
        return value


class ApiSettings(BaseModel):
    """The HTTP server (`tileclass serve`, api/): ``TILECLASS_API_*``."""

    model_config = _prefixed("api")

    token: SecretStr | None = Field(
        default=None,
        description="Token every HTTP API request must carry (bearer header, or the map page's cookie); required "
                    "to serve on an address other than loopback. Never logged.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Web origins whose pages may call the HTTP API from a browser (JSON list; `serve --cors-origin`); "
                    "none: CORS off.",
    )
    json_limit: int = Field(
        default=10_000, ge=1, le=10_000_000,
        description="Most tiles /api/bbox answers as one JSON document (format=json); geojson and csv stream any size.",
    )

    @field_validator("token", mode="before")
    @classmethod
    def _unset_when_blank(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() in PLACEHOLDER_PASSWORDS:
            raise ValueError("it is the .env.example placeholder: set a real token in .env (API_TOKEN with docker "
                             "compose), e.g. from `openssl rand -hex 24`")
        return None if isinstance(value, str) and not value.strip() else value


class BasemapSettings(BaseModel):
    """The map page's background around a job (``TILECLASS_BASEMAP_*``)."""

    model_config = _prefixed("basemap")

    url: str | None = Field(default=None, description="An http(s) tile URL template ({z}, {x}, {y}) that browsers "
                                                      "fetch; unset: none.")
    attribution: str = Field(default="", description="The basemap's credit line; unset: its host name.")

    @field_validator("url", mode="before")
    @classmethod
    def _tile_template(cls, value: Any) -> Any:  # never echoed: a provider's template may hold its key
        value = value.strip() if isinstance(value, str) else value
        if value and not (value.startswith(("https://", "http://")) and all(f"{{{c}}}" in value for c in "zxy")):
            raise ValueError("must be an http(s) tile URL template with {z}, {x} and {y}")
        return value or None


class MetricsSettings(BaseModel):
    """Prometheus metrics (README "Metrics"): the servers bind to loopback unless told otherwise."""

    model_config = _prefixed("metrics")

    host: str = Field(
        default="127.0.0.1",
        description="Address the metrics servers listen on (workers, `tileclass metrics`); 0.0.0.0 for a scraper "
                    "on another host.",
    )
