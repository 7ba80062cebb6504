"""A job's failed tiles: what ``tileclass failures JOB`` lists, ``/api/jobs/{id}/failures`` answers,
``tileclass retry JOB`` enqueues again (``failed_page``) and ``tileclass resume JOB`` leaves out
(``failed_identities``).

A job's failures are the ``failed_tiles`` rows whose job is that job: the worker that failed a tile writes the job
of the batch it ran, and a tile that is later classified (by a retry, a rerun or any other job with the same model)
has its failure row removed, so the list only holds tiles that are still failed. ``reason`` keeps the failures
whose reason contains the text, ignoring case (``"corrupt"`` finds ``"Corrupt JPEG data"``).

Rows come in the order they were first recorded (``failed_tiles.id``), streamed ``YIELD_PER`` at a time: a
server-side cursor on PostgreSQL, a stepped cursor on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from core.jobs import get_job
from core.queries.selections import YIELD_PER
from core.queries.types import FAILURE_COLUMNS, TileFailure, failure_from_row
from core.schema import FailedTile
from core.tiles import Tile


def job_failure_conditions(*, job_id: int, reason: str | None = None) -> list[ColumnElement[bool]]:
    """The conditions on ``failed_tiles`` that select a job's failures (whose reason contains ``reason``)."""
    conditions: list[ColumnElement[bool]] = [FailedTile.job_id == job_id]
    if reason:
        conditions.append(FailedTile.reason.icontains(reason, autoescape=True))
    return conditions


def job_failures_statement(*, job_id: int, reason: str | None = None) -> Select[*tuple[Any, ...]]:
    """The rows of a job's failures, oldest first."""
    return select(*FAILURE_COLUMNS).where(*job_failure_conditions(job_id=job_id, reason=reason)) \
        .order_by(FailedTile.id)


def iter_job_failures(session: Session, *, job_id: int, reason: str | None = None) -> Iterator[TileFailure]:
    """Stream the failed tiles of job ``job_id``: each with its coordinates or path, reason, attempts and time.

    The job is looked up at once (``NotFoundError`` for an unknown one), before the first row is read.
    """
    get_job(session, job_id)
    stmt = job_failures_statement(job_id=job_id, reason=reason).execution_options(yield_per=YIELD_PER)
    return (failure_from_row(row) for row in session.execute(stmt))


def count_job_failures(session: Session, *, job_id: int, reason: str | None = None) -> int:
    """How many failed tiles ``iter_job_failures`` would give."""
    conditions = job_failure_conditions(job_id=job_id, reason=reason)
    return int(session.scalar(select(func.count()).select_from(FailedTile).where(*conditions)) or 0)


def failed_identities(session: Session, *, job_id: int, model_hash: str, source_name: str) -> frozenset[Any]:
    """The identities (``Tile.identity``) of the tiles of ``source_name`` that ``job_id`` recorded as failed for
    ``model_hash``."""
    rows = session.execute(select(FailedTile.z, FailedTile.x, FailedTile.y, FailedTile.path).where(
        FailedTile.model_hash == model_hash, FailedTile.job_id == job_id, FailedTile.source_name == source_name))
    return frozenset(Tile(*row).identity() for row in rows)


def failed_page(session: Session, *, job_id: int, reason: str | None, model_hash: str, source_name: str,
                after: int, limit: int) -> list[tuple[int, Tile]]:
    """Up to ``limit`` of a job's failed tiles (whose reason contains ``reason``) of ``source_name`` for
    ``model_hash``, with their row ids, in id order after ``after``: one page of the list ``retry`` sends."""
    conditions = [*job_failure_conditions(job_id=job_id, reason=reason), FailedTile.model_hash == model_hash,
                  FailedTile.source_name == source_name, FailedTile.id > after]
    rows = session.execute(select(FailedTile.id, FailedTile.z, FailedTile.x, FailedTile.y, FailedTile.path)
                           .where(*conditions).order_by(FailedTile.id).limit(limit))
    return [(row_id, Tile(z, x, y, path)) for row_id, z, x, y, path in rows]
