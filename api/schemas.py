"""The JSON documents the API answers with, as pydantic models: what ``/openapi.json`` and ``/docs`` show.

One owner per shape. The documents the command line prints too (``status --json``, ``query tile --json``, ``models
--json``, ``summary --json``, ``failures --json``, ``query bbox --format json``) are built once in core, by the
read shapes' ``as_dict`` (and ``core.job_status``), so that the CLI and the API never drift apart; the models here
declare them, and FastAPI validates every such answer through its model before it is sent. A model names exactly
the document's keys, in its order (``extra="forbid"``: a key core adds without a field here fails the route's
tests instead of vanishing from the answer), and numbers pass through as they are (``Number``: a ``float`` field
would write a document's ``0`` as ``0.0``). The documents only the API gives (a job's layers, TileJSON) are
``api.map_schemas``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
Time = Annotated[str, Field(description="ISO 8601 date and time.")]


class Document(BaseModel):
    """Exactly these keys, with the values core gave them."""

    model_config = ConfigDict(extra="forbid")


class Health(Document):
    status: str = Field(description="ok (/healthz) or ready (/readyz).")


# ------------------------------------------------------------------------------------------ jobs: status --json


class HostProblem(Document):
    """What a worker could not do for the job because of its own host (core.host_problems)."""

    worker: str
    job_id: int = Field(description="0: a problem of the whole host.")
    reason: str
    first_seen: Time
    last_seen: Time
    occurrences: int


class JobStatus(Document):
    """One job's progress, as ``tileclass status JOB --json`` prints it."""

    job_id: int
    kind: str
    state: str
    total: int
    classified: int
    uncertain: int = Field(description="Of the classified tiles, those less confident than the job's bound.")
    failed: int
    empty: int
    pending: int
    skipped: int
    batches_total: int
    batches_done: int
    tiles_per_second: Number = Field(description="Over the last minute while running; the average once finished.")
    active_seconds: Number | None
    eta_seconds: Number | None
    root: str | None = Field(description="The job's source.")
    model: str | None
    message: str | None
    min_coverage: Number | None
    uncertain_below: Number | None
    created_at: Time | None
    finished_at: Time | None
    host_problems: list[HostProblem]


class TileFailure(Document):
    """A tile that could not be classified (``tileclass failures JOB --json``)."""

    tile: str | None = Field(description="z/x/y; null for a tile without coordinates (see path).")
    z: int | None
    x: int | None
    y: int | None
    root: str
    path: str | None
    reason: str
    attempts: int
    failed_at: Time | None
    job: int | None
    model: str | None


# --------------------------------------------------------------------------------------------- tiles and answers


class ClassProbability(Document):
    label: str
    probability: Number


class TileAnswer(Document):
    """A tile's stored result (``query bbox --format json``; ``top`` only where classes were asked for)."""

    tile: str | None = Field(description="z/x/y; null for a tile without coordinates (see path).")
    z: int | None
    x: int | None
    y: int | None
    root: str = Field(description="The source the tile was read from.")
    path: str | None
    label: str
    confidence: Number
    uncertain: bool
    coverage: Number | None = Field(description="Share of the tile's pixels that held data (null: not measured).")
    model: str
    job: int | None
    classified_at: Time
    top: list[ClassProbability] | None = Field(None, description="The most probable classes, most probable first.")


class EmptyAnswer(Document):
    """A tile found empty: nothing to classify (no tile at the source, entirely transparent or nodata)."""

    tile: str | None
    z: int | None
    x: int | None
    y: int | None
    root: str
    path: str | None
    label: None
    confidence: None
    empty: Literal[True]
    reason: str
    model: str
    job: int | None
    found_at: Time


class Correction(Document):
    """A person's label for the tile (``tileclass correct``), checked against ``model``'s classes."""

    label: str
    author: str
    corrected_at: Time
    model: str
    origin: str | None = Field(description="The file it was imported from, if any.")


class ZoomExtent(Document):
    zoom: int
    x: tuple[int, int] = Field(description="The first and last column with results.")
    y: tuple[int, int] = Field(description="The first and last row with results.")
    bbox: tuple[Number, Number, Number, Number] = Field(description="west, south, east, north (WGS84 degrees)")


class ClassifiedFlag(Document):
    classified: Literal[True]
    empty: Literal[False]


class UnclassifiedFlag(Document):
    classified: Literal[False]


class TileClassified(TileAnswer, ClassifiedFlag):
    """``query tile --json`` of a classified tile: its result and its corrections, newest first."""

    corrections: list[Correction]


class TileEmpty(EmptyAnswer, UnclassifiedFlag):
    """``query tile --json`` of a tile found empty."""

    corrections: list[Correction]


class TileNotFound(Document):
    """404: the tile has neither a result nor an empty record; ``detail`` says where the results are."""

    detail: str
    tile: str
    classified: Literal[False]
    empty: Literal[False]
    model: str | None
    results_extent: list[ZoomExtent] | None = Field(None, description="Per zoom, where the model's results are.")
    corrections: list[Correction]


TileReport = TileClassified | TileEmpty
RegionAnswers = list[TileAnswer | EmptyAnswer]


# ------------------------------------------------------------------------------------- summaries, models, layers


class ClassCount(Document):
    label: str
    count: int
    share: Number = Field(description="Of the classified tiles.")
    uncertain: int
    area_km2: Number | None = Field(description="The class's tiles' true ground area on the WGS84 ellipsoid, km² "
                                                "(null for tiles known only by a path).")
    colour: str = Field(description="The class's colour on the map, #rrggbb.")


class GroupCount(Document):
    group: str
    classes: list[str] = Field(description="The model's classes in the group.")
    count: int
    share: Number = Field(description="Of the classified tiles.")
    uncertain: int
    area_km2: Number | None = Field(description="The sum of its classes' areas, km² (null for tiles known only by "
                                                "a path).")
    colour: str = Field(description="The group's colour on the map (?groups=NAME), #rrggbb.")


class ReasonCount(Document):
    reason: str
    count: int


class FailedCounts(Document):
    count: int
    top_reasons: list[ReasonCount]


class EmptyCounts(Document):
    count: int
    reasons: list[ReasonCount]


class ModelCount(Document):
    hash: str
    tiles: int
    created_at: Time
    selected: bool = Field(description="Whether the summary counts this model's results.")


class Summary(Document):
    """Counts and shares per class, failures and empty tiles (``tileclass summary --json``)."""

    job: int | None
    bbox: str | None
    zoom: int | None
    model: str | None
    classified: int
    uncertain: int
    classes: list[ClassCount]
    failed: FailedCounts
    empty: EmptyCounts
    models: list[ModelCount] = Field(description="The models with results there, and how many.")
    grouping: str | None = Field(None, description="With ?groups=NAME: the class grouping counted in groups.")
    groups: list[GroupCount] | None = Field(None, description="With ?groups=NAME: per group, the sums of its "
                                                              "classes, in the grouping's order.")


class ModelSummary(Document):
    """A registered model (``tileclass models --json``)."""

    hash: str
    name: str | None
    arch: str
    classes: int = Field(description="How many classes.")
    image_size: int
    val_accuracy: Number | None
    registered_at: Time
    results: int


class ModelDetail(ModelSummary):
    """A registered model in full (``tileclass models show MODEL --json``)."""

    class_names: list[str]
    path: str
    metrics: dict[str, Any]
    metrics_path: str
    train_config: dict[str, Any] | None
    temperature: Number | None = Field(description="The softmax temperature (null: its sidecar is unreadable).")
