"""What a worker does about a host error: put the batch back, pause its job here for a while, keep serving others.

A ``core.errors.HostError`` is a problem of this host, not of the tiles (its tile root is not mounted, the
checkpoint is missing from its model folder, the device ran out of memory, the database stayed unreachable past
the retries). No tile is recorded as failed. Instead the worker:

- puts the batch back on the queue with a delay that grows with each host error of the job here (2, 4, 8 … s, at
  most the cooldown and half the visibility timeout, so that the broker never hands the held message to a second
  worker);
- logs one line, and records the problem for ``tileclass status`` (``core.host_problems``) when the database is up;
- pauses the job on this worker for ``TILECLASS_WORKER_HOST_COOLDOWN`` seconds: its batches that arrive meanwhile
  go straight back, so the worker keeps serving other jobs and healthy workers pick the job up.

A ``HostError`` with ``broken`` set (the device lost, the model folder unreadable, every configured tile root
missing) means no job can run here: the worker exits with ``EXIT_HOST_BROKEN`` instead, leaving the batch
unacknowledged so that the broker gives it to another worker, and its supervisor restarts it or a person looks.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Task
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core import host_problems
from core.db import session_scope
from core.errors import HostError
from core.messages import ClassifyBatch
from core.settings import Settings

EXIT_HOST_BROKEN = 3
log = logging.getLogger(__name__)


@dataclass
class _Pause:
    until: float  # time.monotonic()
    reason: str
    errors: int  # host errors of the job in a row on this worker: the backoff's exponent


_paused: dict[int, _Pause] = {}
_recorded: set[int] = set()  # jobs this process has a host_problems row for


def paused(job_id: int) -> str | None:
    """Why ``job_id`` is paused on this worker, or None when it is not (any more)."""
    pause = _paused.get(job_id)
    if pause is None or time.monotonic() >= pause.until:
        return None
    return pause.reason


def delay(job_id: int, settings: Settings) -> float:
    """Seconds before the job's batch is offered again: doubling per host error in a row, with 25 % jitter."""
    errors = _paused[job_id].errors if job_id in _paused else 1
    cap = min(settings.worker.host_cooldown, settings.visibility_timeout / 2)
    return min(cap, 2.0**errors) * (1 + random.random() * 0.25)


def handle(task: Task, batch: ClassifyBatch, error: HostError, settings: Settings) -> dict[str, Any]:
    """Put ``batch`` back and pause its job here (or, for a broken host, exit); see the module docstring."""
    worker = task.request.hostname or "worker"
    previous = _paused.get(batch.job_id)
    errors = previous.errors + 1 if previous is not None else 1
    _paused[batch.job_id] = _Pause(time.monotonic() + settings.worker.host_cooldown, error.reason, errors)
    _note(worker, host_problems.WHOLE_HOST if error.broken else batch.job_id, error.reason)
    if error.broken:
        log.critical("job %d batch %d: this host cannot serve any job, exiting with code %d: %s", batch.job_id,
                     batch.seq, EXIT_HOST_BROKEN, error.reason)
        raise SystemExit(EXIT_HOST_BROKEN)  # the unacknowledged message goes back to the queue for another worker
    wait = put_back(task, batch, settings)
    log.warning("job %d batch %d: host problem, not the tiles' (%s); batch put back in %.0f s, job paused here "
                "for %.0f s", batch.job_id, batch.seq, error.reason, wait, settings.worker.host_cooldown)
    return {"put_back": error.reason}


def put_back(task: Task, batch: ClassifyBatch, settings: Settings) -> float:
    """Publish the running message again, unchanged, after ``delay``; the running one is then acknowledged."""
    wait = delay(batch.job_id, settings)
    task.signature_from_request(task.request, countdown=wait, retries=task.request.retries).apply_async()
    return wait


def served(task: Task, job_id: int) -> None:
    """A batch of ``job_id`` ran here: its pause and its recorded host problem are over."""
    _paused.pop(job_id, None)
    if job_id in _recorded:
        _recorded.discard(job_id)
        worker = task.request.hostname or "worker"
        _write(lambda s: host_problems.clear_problems(s, worker=worker, job_ids=[job_id]))


def host_started(worker: str) -> None:
    """A (re)started worker: a problem of the whole host it recorded before is over (it says again if not)."""
    _write(lambda s: host_problems.clear_problems(s, worker=worker, job_ids=[host_problems.WHOLE_HOST]))


def _note(worker: str, job_id: int, reason: str) -> None:
    if _write(lambda s: host_problems.record_problem(s, worker=worker, job_id=job_id, reason=reason)):
        _recorded.add(job_id)


def _write(action: Callable[[Session], None]) -> bool:
    """One best-effort transaction: the database may be the host's problem itself, and then the log line is the
    only record."""
    try:
        with session_scope() as session:
            action(session)
    except SQLAlchemyError as exc:
        log.debug("could not update host_problems: %s", exc)
        return False
    return True
