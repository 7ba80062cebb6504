"""What a job is and can be, without the tables: its read shape (``JobInfo``) and the kinds, states and phases the
command line and the HTTP API name (``core.schema`` stores them as plain strings; ``core.jobs`` moves a job from one
to the next).

A classify job's ``state`` says where it stands (``enqueuing``: a producer is publishing its batches; ``queued``:
they all wait or run; then ``completed``, or ``cancelled``); its ``phase`` says which producer pass publishes while
it is ``enqueuing`` (``enqueue``, ``resume`` or ``retry``), and is empty otherwise. The transitions between them are
written once, in ``core.jobs.TRANSITIONS`` (drawn in docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any


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


class JobPhase(enum.StrEnum):
    """Which producer pass publishes an ``enqueuing`` classify job's batches; a job in any other state has none.

    A pass that was stopped leaves its phase, so that only the same pass continues it: the same ``enqueue``
    command, ``tileclass resume JOB`` or ``tileclass retry JOB``.
    """

    ENQUEUE = "enqueue"  # the first walk of the job's region (``tileclass enqueue``, and its rerun)
    RESUME = "resume"  # its region walked again for the tiles the broker lost (``tileclass resume``)
    RETRY = "retry"  # its failed tiles sent again (``tileclass retry``)


class BatchState(enum.StrEnum):
    QUEUED = "queued"
    DONE = "done"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class JobInfo:
    """A job as the command line and the HTTP API read it (``core.jobs.get_job``): a copy of its row."""

    id: int
    kind: str
    state: str
    phase: str | None  # which producer pass publishes it while ``enqueuing`` (``JobPhase``)
    model_hash: str | None
    source: dict[str, Any]  # what ``core.sources`` records (a training run: its data folder and options)
    region: dict[str, Any]  # what ``core.region`` records
    message: str | None
    total_tiles: int
    total_batches: int
    skipped_tiles: int
    resume_after: list[Any] | None  # the walk position up to which every tile is published and recorded
    seq_reserved: int  # batch numbers handed out
    seq_recorded: int  # every batch number below it has its row
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    lease_owner: str | None  # a training run's lease (``core.leases``)
    lease_expires_at: datetime | None
    min_coverage: float | None  # the job's bounds (``core.jobs.JobBounds``)
    uncertain_below: float | None

    @classmethod
    def of(cls, row: object) -> JobInfo:
        """The read shape of a ``core.schema.Job`` row."""
        return cls(**{field.name: getattr(row, field.name) for field in fields(cls)})
