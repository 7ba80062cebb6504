"""The results database's tables (SQLAlchemy 2.x); the same schema on SQLite and PostgreSQL.

- ``models``: registered checkpoints, keyed by the SHA-256 of the checkpoint file, with an optional unique name.
- ``jobs``: one enqueue (or training run): its source (``core.sources``; a training run's data folder), the
  region asked for, the model, totals, state and ``phase`` (which producer pass publishes it: ``core.job_states``),
  timestamps, and the producer's bookkeeping: ``resume_after`` (the walk position up to which every tile is
  published and recorded) and the batch numbers ``seq_reserved`` (handed out) and ``seq_recorded`` (every number
  below it has a ``job_batches`` row).
- ``tile_results``: one row per (model, tile). A tile with coordinates is keyed by ``(model, z, x, y)``; a tile
  without coordinates (a plain folder of images) by ``(model, source, path)`` (``core.tiles.Tile.identity``). Two
  partial unique indexes keep both keys unique, because NULLs never conflict in a plain unique index. Each result
  keeps its tile's ``coverage`` (the share of pixels with data) and whether it is ``uncertain`` (less confident than
  its job's ``uncertain_below``).
- ``job_batches``: one row per enqueued batch of a job (not its tiles): a worker marks it done with its counts.
  A job's progress is summed from its batches, so two jobs over overlapping regions each count their own tiles,
  and a redelivered batch overwrites its row instead of counting twice.
- ``failed_tiles``: tiles that could not be classified, with the reason and how often it was tried, keyed like
  ``tile_results``. A tile that is later classified has its failure row removed, so no tile is both failed and
  classified for one model.

- ``empty_tiles``: tiles with nothing to classify (no tile at the server, entirely transparent or nodata), with
  why, keyed like ``tile_results``: neither classified nor failed, and without a result row. A tile is in at most
  one of ``tile_results``, ``failed_tiles`` and ``empty_tiles`` for one model.

- ``tile_corrections``: a person's label for a tile (``tileclass correct``), with its author and time, checked
  against the class list of ``model_hash`` (a plain column: a correction outlives its model's registration). Every
  correction is kept; the newest one of a tile is its label. The model's own result is never changed.

- ``host_problems``: what a worker could not do because of its own host (a tile root not mounted, a checkpoint
  missing there), per (worker, job), for ``tileclass status``; its batches went back to the queue, no tile failed.

- ``assessments``, ``assessment_strata``, ``assessment_units``: a job's accuracy-assessment sample
  (``core.assessment.store``): the design (seed, allocation), each stratum (a map class) with its mapped area and
  tile count when the sample was drawn, and the sampled tiles with their reference labels as people give them.

- ``class_groupings``: a named grouping of one model's classes into a user's categories (``core.class_groups``):
  each group with its classes in display order, ``other`` (the classes no group names) last.

``source_name`` in the tile tables (the column ``root_name``, named before sources had kinds) is the name of the
tile's source (``Tile`` paths are relative to it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The enums live apart from the tables (the command line names them without importing the tables).
from core.job_states import BatchState, JobKind, JobState

# The largest value an ``Integer`` column holds: int4 on PostgreSQL (SQLite would take 2**63 - 1). Ids and numbers
# that reach such a column from outside (job ids, batch numbers) are bounded by it wherever they come in.
MAX_INTEGER = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def _tile_keys(table: str) -> tuple[Index, Index]:
    """The two unique keys of a per-(model, tile) table: coordinates where a tile has them, else its path."""
    with_coordinates, without = text("z IS NOT NULL"), text("z IS NULL")
    return (
        Index(f"uq_{table}_model_zxy", "model_hash", "z", "x", "y", unique=True,
              sqlite_where=with_coordinates, postgresql_where=with_coordinates),
        Index(f"uq_{table}_model_path", "model_hash", "root_name", "path", unique=True,
              sqlite_where=without, postgresql_where=without),
    )


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, dict[str, float]: JSON}


class Model(Base):
    __tablename__ = "models"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    arch: Mapped[str] = mapped_column(String(32))
    class_names: Mapped[list[str]]
    image_size: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    name: Mapped[str | None] = mapped_column(String(64))  # ``tileclass models name``: usable as ``--model NAME``

    __table_args__ = (Index("uq_models_name", "name", unique=True),)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), default=JobKind.CLASSIFY)
    state: Mapped[str] = mapped_column(String(16), default=JobState.ENQUEUING, index=True)
    model_hash: Mapped[str | None] = mapped_column(ForeignKey("models.hash"), index=True)
    source: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    region: Mapped[dict[str, Any]] = mapped_column(default=dict)
    resume_after: Mapped[list[Any] | None] = mapped_column(JSON)
    seq_reserved: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    seq_recorded: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    total_tiles: Mapped[int] = mapped_column(Integer, default=0)
    total_batches: Mapped[int] = mapped_column(Integer, default=0)
    skipped_tiles: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)  # for people: what happened last (no state is read from it)
    # Which producer pass publishes an ``enqueuing`` classify job (``core.job_states.JobPhase``); NULL otherwise.
    phase: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A running training job's lease: the worker running it renews it; past it, the run is lost (core.leases).
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A classify job's bounds, as enqueue settled them (its option, else the setting or the model's default) and
    # workers read them: below ``min_coverage`` of pixels with data a tile is empty (NULL, jobs from before 0007:
    # TILECLASS_MIN_COVERAGE); an answer less confident than ``uncertain_below`` is flagged (NULL: none is).
    min_coverage: Mapped[float | None] = mapped_column(Float)
    uncertain_below: Mapped[float | None] = mapped_column(Float)


class JobBatch(Base):
    __tablename__ = "job_batches"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    tiles: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=BatchState.QUEUED)
    classified: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    empty: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # ``tileclass retry``: how many of its tiles were failures of earlier batches of the job tried again; they
    # count once in the job's totals and no longer as failed (core.jobs.progress).
    retried: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    uncertain: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))  # of ``classified``
    enqueued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_job_batches_job_finished", "job_id", "finished_at"),)


class TileRow:
    """What every per-(model, tile) table holds: the model, the job that wrote the row, and the tile's key
    (coordinates, else its source and path; see ``_tile_keys``)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_hash: Mapped[str] = mapped_column(ForeignKey("models.hash"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    z: Mapped[int | None] = mapped_column(Integer)
    x: Mapped[int | None] = mapped_column(Integer)
    y: Mapped[int | None] = mapped_column(Integer)
    source_name: Mapped[str] = mapped_column("root_name", String(128))
    path: Mapped[str | None] = mapped_column(Text)


class TileResult(TileRow, Base):
    __tablename__ = "tile_results"

    label: Mapped[str] = mapped_column(String(128))
    confidence: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[dict[str, float]]
    classified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The share of the tile's pixels that held data (1.0: all); NULL for a result from before it was measured.
    coverage: Mapped[float | None] = mapped_column(Float)
    # Less confident than its job's ``uncertain_below``: the label and probabilities are kept, with this flag.
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        *_tile_keys("tile_results"),
        # Point lookups by tile and x/y range scans within one zoom, across models.
        Index("ix_tile_results_zxy", "z", "x", "y"),
        # A job's results, least confident first for the review queue (core.queries.review).
        Index("ix_tile_results_job", "job_id", "confidence"),
    )


class FailedTile(TileRow, Base):
    __tablename__ = "failed_tiles"

    reason: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (*_tile_keys("failed_tiles"), Index("ix_failed_tiles_job", "job_id"))


class EmptyTile(TileRow, Base):
    __tablename__ = "empty_tiles"

    reason: Mapped[str] = mapped_column(Text)
    found_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (*_tile_keys("empty_tiles"), Index("ix_empty_tiles_job", "job_id"))


class TileCorrection(Base):
    __tablename__ = "tile_corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    z: Mapped[int] = mapped_column(Integer)
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(128))
    model_hash: Mapped[str] = mapped_column(String(64))  # whose class list ``label`` belongs to
    author: Mapped[str] = mapped_column(String(255))
    origin: Mapped[str | None] = mapped_column(Text)  # the file it was imported from, None for one typed in
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_tile_corrections_zxy", "z", "x", "y", "created_at"),)


class HostProblem(Base):
    __tablename__ = "host_problems"

    worker: Mapped[str] = mapped_column(String(255), primary_key=True)
    job_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0: the whole host (core.host_problems)
    reason: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)


class Assessment(Base):
    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), unique=True)  # one sample per job
    model_hash: Mapped[str] = mapped_column(String(64))  # whose classes the reference labels are
    seed: Mapped[int] = mapped_column(Integer)
    allocation: Mapped[str] = mapped_column(String(16))  # "per_class" or "proportional"
    sample_size: Mapped[int] = mapped_column(Integer)  # the N asked for: per class, or in total
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AssessmentStratum(Base):
    """A map class as it was when the sample was drawn: the design the estimators read, whatever happens later."""

    __tablename__ = "assessment_strata"

    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"), primary_key=True)
    class_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    mapped_area_km2: Mapped[float] = mapped_column(Float)
    tile_count: Mapped[int] = mapped_column(Integer)
    sample_size: Mapped[int] = mapped_column(Integer)


class AssessmentUnit(Base):
    """A sampled tile, in the order a reviewer sees them, with its reference label once someone gives it."""

    __tablename__ = "assessment_units"

    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    z: Mapped[int] = mapped_column(Integer)
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    stratum: Mapped[str] = mapped_column(String(128))
    area_km2: Mapped[float] = mapped_column(Float)
    reference: Mapped[str | None] = mapped_column(String(128))
    labelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    author: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("uq_assessment_units_zxy", "assessment_id", "z", "x", "y", unique=True),)


class ClassGroupingRow(Base):
    """``tileclass groups add``: the model is a plain column, as for corrections (a grouping outlives its model)."""

    __tablename__ = "class_groupings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_hash: Mapped[str] = mapped_column(String(64))
    groups: Mapped[list[Any]] = mapped_column(JSON)  # [[group, [class, ...]], ...]: a list keeps their order
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
