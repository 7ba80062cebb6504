"""A training run from the ``train`` queue: fit, save under the model directory, register, report on the job.

The job moves queued -> running -> completed (with the new model's hash and its accuracy in the message) or
failed (with a one-line reason). A request for a job that already completed is a redelivery and is skipped, and
so is one for a job another live worker is training. While it trains, the run renews the job's lease
(``core.leases``) from a background thread: a worker killed mid-run leaves a lease that expires, and the job shows
as ``lost`` until ``tileclass resume`` sends it again. The run writes a checkpoint of its whole state at each
epoch's end (``train-job-<id>/epochs/``, model/epochs.py), and a run sent again continues from the newest one:
weights, optimizer, weight average, schedule position and random streams.
``tileclass cancel`` on a running training is seen at the next epoch's end: the run stops there, saves the best
checkpoint so far as ``train-job-<id>/model.pt`` without registering it, and the job stays ``cancelled`` with a
message saying where that checkpoint is.
The data folder (and initial weights given as a path) must lie inside one of the worker's tile roots
(``TILECLASS_TILE_ROOTS``) or its model folder: a message never makes a worker read another file of its host.
The checkpoint is written to ``TILECLASS_MODEL_DIR/train-job-<id>/`` and registered, which copies it into the
model directory under its hash where every worker finds it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from core import jobs, leases
from core.db import session_scope
from core.errors import TileclassError
from core.messages import TrainRequest
from core.models.registry import register_checkpoint
from core.schema import JobState
from core.settings import Settings
from core.sources.roots import is_inside
from worker.runtime import with_db_retry

if TYPE_CHECKING:
    from model.train import TrainResult

HELD = "held"
log = logging.getLogger(__name__)


def run_training(request: TrainRequest, settings: Settings) -> dict[str, Any]:
    """Train, register and record the outcome on the job; returns a summary for the log."""
    job_id = request.job_id
    owner = f"{socket.gethostname()}:{os.getpid()}"
    seconds = settings.train_lease_seconds
    state = with_db_retry(lambda: _start(job_id, owner, seconds), what=f"train job {job_id}")
    if state is None:
        log.error("dropping train request: job %d does not exist", job_id)
        return {"dropped": "unknown job"}
    if state in (JobState.COMPLETED, JobState.CANCELLED, HELD):
        log.info("skipping train request for job %d: it is %s", job_id,
                 "being trained by another worker" if state == HELD else f"already {state}")
        return {"skipped": state}
    started = time.perf_counter()
    try:
        with LeaseKeeper(job_id, owner, seconds):
            result = _fit(request, settings)
            if result.stopped_early:  # cancelled: the best checkpoint so far stays on disk, unregistered
                message = _cancelled_message(result)
                with_db_retry(lambda: _finish(job_id, owner, JobState.CANCELLED, message, None),
                              what=f"train job {job_id}")
                log.info("train job %d: %s", job_id, message)
                return {"cancelled": str(result.checkpoint)}
            model_hash = _register(request, settings, result.checkpoint)
    except Exception as exc:  # any failure ends the run; the job records it in one line for `tileclass status`
        reason = _one_line(exc)
        log.error("train job %d failed: %s", job_id, reason, exc_info=not isinstance(exc, TileclassError))
        with_db_retry(lambda: _finish(job_id, owner, JobState.FAILED, f"training failed: {reason}", None),
                      what=f"train job {job_id}")
        return {"failed": reason}
    summary = _summary(result.metrics)
    message = f"trained model {model_hash[:12]} in {time.perf_counter() - started:.0f} s: {summary}"
    with_db_retry(lambda: _finish(job_id, owner, JobState.COMPLETED, message, model_hash), what=f"train job {job_id}")
    log.info("train job %d: %s", job_id, message)
    return {"model_hash": model_hash}


class LeaseKeeper:
    """Renews the job's lease every third of its length while the ``with`` block trains."""

    def __init__(self, job_id: int, owner: str, seconds: float) -> None:
        self.job_id, self.owner, self.seconds = job_id, owner, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                with session_scope() as session:
                    kept = leases.renew(session, job_id=self.job_id, owner=self.owner, seconds=self.seconds)
            except SQLAlchemyError as exc:  # the next renewal may get through: the lease lasts three periods
                log.warning("train job %d: could not renew its lease (%s)", self.job_id, exc.__class__.__name__)
                continue
            if not kept:
                log.warning("train job %d: its lease is no longer ours (the run was sent again or cancelled)",
                            self.job_id)
                return


def _fit(request: TrainRequest, settings: Settings) -> TrainResult:
    """Train (continuing from the job's newest epoch checkpoint, if a lost run left one) until the end or until
    the job is cancelled."""
    from model.train import TrainConfig, fit

    options = dict(request.config)
    if options.get("device", "auto") == "auto":
        options["device"] = settings.device  # the worker host's device setting decides where "auto" runs
    try:
        config = TrainConfig(**options)
    except TypeError as exc:
        raise TileclassError(f"invalid training options: {exc}") from None
    data_dir = _under_a_root(request.data_dir, settings, what="training data folder")
    if config.weights not in ("none", "imagenet"):
        config = replace(config, weights=str(_under_a_root(config.weights, settings, what="initial weights")))
    if config.val_dir is not None:
        config = replace(config, val_dir=str(_under_a_root(config.val_dir, settings, what="validation folder")))
    out_dir = settings.model_dir / f"train-job-{request.job_id}"
    return fit(config, data_dir=data_dir, out_dir=out_dir, progress=False, resume=True,
               should_stop=lambda: _is_cancelled(request.job_id))


def _register(request: TrainRequest, settings: Settings, checkpoint: Path) -> str:
    def register() -> str:
        with session_scope() as session:
            return register_checkpoint(session, checkpoint=checkpoint, settings=settings).hash

    return with_db_retry(register, what=f"train job {request.job_id}")


def _is_cancelled(job_id: int) -> bool:
    """Whether the user cancelled the job (asked at each epoch's end); an unreachable database says no, and the
    next epoch asks again."""
    try:
        with session_scope() as session:
            return jobs.is_cancelled(session, job_id=job_id)
    except SQLAlchemyError as exc:
        log.warning("train job %d: could not check for a cancel (%s)", job_id, exc.__class__.__name__)
        return False


def _cancelled_message(result: TrainResult) -> str:
    metrics = result.metrics
    epochs = metrics["epochs"][-1]["epoch"] if metrics["epochs"] else 0
    return (f"cancelled by the user; stopped after epoch {epochs}: the best checkpoint so far (epoch "
            f"{metrics['best_epoch']}, {_summary(metrics)}) is {result.checkpoint.resolve()}, not registered "
            "(give it to --model to use it)")


def _under_a_root(path: str, settings: Settings, *, what: str) -> Path:
    """``path`` resolved, if it lies inside a configured tile root or the model folder; a message must not make a
    worker read any other file on its host."""
    real = os.path.realpath(path)
    if any(is_inside(real, root) for root in [*settings.sources.roots.values(), settings.model_dir]):
        return Path(real)
    known = ", ".join(f"{name}={folder}" for name, folder in settings.sources.roots.items()) or "none configured"
    raise TileclassError(f"{what} {path!r} is not inside a tile root of this worker (TILECLASS_TILE_ROOTS: "
                         f"{known}) or its model folder")


def _summary(metrics: dict[str, Any]) -> str:
    for key in ("val_accuracy", "accuracy", "test_accuracy"):
        value = metrics.get(key)
        if isinstance(value, int | float):
            return f"{key.replace('_', ' ')} {value:.3f}"
    return "no accuracy reported"


def _start(job_id: int, owner: str, seconds: float) -> str | None:
    """The job's state before this run (``HELD``: another live worker trains it); a job that may run is taken."""
    with session_scope() as session:
        try:
            job = jobs.job_row(session, job_id)
        except TileclassError:
            return None
        previous = job.state
        if previous in (JobState.COMPLETED, JobState.CANCELLED):
            return previous
        if leases.held_by_other(job, owner):
            return HELD
        leases.take(session, job, owner=owner, seconds=seconds)
        return previous


def _finish(job_id: int, owner: str, state: JobState, message: str, model_hash: str | None) -> None:
    with session_scope() as session:
        job = jobs.job_row(session, job_id)
        if job.lease_owner not in (None, owner):  # lost and sent again: the new run reports on the job
            log.warning("train job %d: %s, but another run holds the job now; leaving it to that run", job_id, message)
            return
        if job.state == JobState.CANCELLED and state != JobState.CANCELLED:
            # Cancelled while its last epoch ran, or while it failed: it stays cancelled, with what happened.
            state, message = JobState.CANCELLED, f"cancelled by the user; then {message}"
        if model_hash is not None:
            job.model_hash = model_hash
            session.flush()
        leases.release(job)
        jobs.set_state(session, job_ids=[job_id], state=state, message=message)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = "" if isinstance(exc, TileclassError) else f"{exc.__class__.__name__}: "
    return (name + text)[:500]
