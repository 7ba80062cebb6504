"""The results database's tables (SQLAlchemy 2.x); the same schema on SQLite and PostgreSQL.

- ``models``: registered checkpoints, keyed by the SHA-256 of the checkpoint file.
- ``jobs``: one enqueue (or training run): root, layout, region, model, totals, state, timestamps.
- ``tile_results``: one row per (model, tile). A tile with coordinates is keyed by ``(model, z, x, y)``; a tile
  without coordinates (a plain folder of images) by ``(model, root, path)``. Two partial unique indexes keep both
  keys unique, because NULLs never conflict in a plain unique index.
- ``job_batches``: one row per enqueued batch of a job (not its tiles): a worker marks it done with its counts.
  A job's progress is summed from its batches, so two jobs over overlapping regions each count their own tiles,
  and a redelivered batch overwrites its row instead of counting twice.
- ``failed_tiles``: tiles that could not be classified, with the reason and how often it was tried. A tile that is
  later classified has its failure row removed, so no tile is both failed and classified for one model.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, dict[str, float]: JSON}


class JobState(enum.StrEnum):
    ENQUEUING = "enqueuing"
    QUEUED = "queued"
    RUNNING = "running"  # a training job a worker is running
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class JobKind(enum.StrEnum):
    CLASSIFY = "classify"
    TRAIN = "train"


class Model(Base):
    __tablename__ = "models"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    arch: Mapped[str] = mapped_column(String(32))
    class_names: Mapped[list[str]]
    image_size: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), default=JobKind.CLASSIFY)
    state: Mapped[str] = mapped_column(String(16), default=JobState.ENQUEUING, index=True)
    model_hash: Mapped[str | None] = mapped_column(ForeignKey("models.hash"), index=True)
    root_name: Mapped[str | None] = mapped_column(String(128))
    root_path: Mapped[str | None] = mapped_column(Text)
    layout: Mapped[str | None] = mapped_column(String(128))
    region: Mapped[dict[str, Any]] = mapped_column(default=dict)
    total_tiles: Mapped[int] = mapped_column(Integer, default=0)
    total_batches: Mapped[int] = mapped_column(Integer, default=0)
    skipped_tiles: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BatchState(enum.StrEnum):
    QUEUED = "queued"
    DONE = "done"
    CANCELLED = "cancelled"


class JobBatch(Base):
    __tablename__ = "job_batches"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    tiles: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=BatchState.QUEUED)
    classified: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    enqueued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_job_batches_job_finished", "job_id", "finished_at"),)


class TileResult(Base):
    __tablename__ = "tile_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_hash: Mapped[str] = mapped_column(ForeignKey("models.hash"))
    z: Mapped[int | None] = mapped_column(Integer)
    x: Mapped[int | None] = mapped_column(Integer)
    y: Mapped[int | None] = mapped_column(Integer)
    root_name: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(128))
    confidence: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[dict[str, float]]
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    classified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        Index(
            "uq_tile_results_model_zxy",
            "model_hash", "z", "x", "y",
            unique=True,
            sqlite_where=text("z IS NOT NULL"),
            postgresql_where=text("z IS NOT NULL"),
        ),
        Index(
            "uq_tile_results_model_path",
            "model_hash", "root_name", "path",
            unique=True,
            sqlite_where=text("z IS NULL"),
            postgresql_where=text("z IS NULL"),
        ),
        # Point lookups by tile and x/y range scans within one zoom, across models.
        Index("ix_tile_results_zxy", "z", "x", "y"),
        Index("ix_tile_results_job", "job_id"),
    )


class FailedTile(Base):
    __tablename__ = "failed_tiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_hash: Mapped[str] = mapped_column(ForeignKey("models.hash"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"))
    z: Mapped[int | None] = mapped_column(Integer)
    x: Mapped[int | None] = mapped_column(Integer)
    y: Mapped[int | None] = mapped_column(Integer)
    root_name: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        Index("uq_failed_tiles_model_path", "model_hash", "root_name", "path", unique=True),
        Index("ix_failed_tiles_job", "job_id"),
    )
