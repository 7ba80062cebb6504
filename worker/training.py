"""A training run from the ``train`` queue: fit, save under the model directory, register, report on the job.

The job moves queued -> running -> completed (with the new model's hash and its accuracy in the message) or
failed (with a one-line reason). A request for a job that already completed is a redelivery and is skipped.
The checkpoint is written to ``TILECLASS_MODEL_DIR/train-job-<id>/`` and registered, which copies it into the
model directory under its hash where every worker finds it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from core import jobs
from core.db import session_scope
from core.errors import TileclassError
from core.messages import TrainRequest
from core.registry import register_checkpoint
from core.schema import JobState
from core.settings import Settings
from worker.runtime import with_db_retry

log = logging.getLogger(__name__)


def run_training(request: TrainRequest, settings: Settings) -> dict[str, Any]:
    """Train, register and record the outcome on the job; returns a summary for the log."""
    job_id = request.job_id
    state = with_db_retry(lambda: _start(job_id), what=f"train job {job_id}")
    if state is None:
        log.error("dropping train request: job %d does not exist", job_id)
        return {"dropped": "unknown job"}
    if state in (JobState.COMPLETED, JobState.CANCELLED):
        log.info("skipping train request for job %d: it is already %s", job_id, state)
        return {"skipped": state}
    started = time.perf_counter()
    try:
        model_hash, summary = _fit_and_register(request, settings)
    except Exception as exc:  # any failure ends the run; the job records it in one line for `tileclass status`
        reason = _one_line(exc)
        log.error("train job %d failed: %s", job_id, reason, exc_info=not isinstance(exc, TileclassError))
        with_db_retry(lambda: _finish(job_id, JobState.FAILED, f"training failed: {reason}", None),
                      what=f"train job {job_id}")
        return {"failed": reason}
    message = f"trained model {model_hash[:12]} in {time.perf_counter() - started:.0f} s: {summary}"
    with_db_retry(lambda: _finish(job_id, JobState.COMPLETED, message, model_hash), what=f"train job {job_id}")
    log.info("train job %d: %s", job_id, message)
    return {"model_hash": model_hash}


def _fit_and_register(request: TrainRequest, settings: Settings) -> tuple[str, str]:
    from model.train import TrainConfig, fit

    options = dict(request.config)
    if options.get("device", "auto") == "auto":
        options["device"] = settings.device  # the worker host's device setting decides where "auto" runs
    try:
        config = TrainConfig(**options)
    except TypeError as exc:
        raise TileclassError(f"invalid training options: {exc}") from None
    data_dir = Path(request.data_dir)
    out_dir = settings.model_dir / f"train-job-{request.job_id}"
    result = fit(config, data_dir=data_dir, out_dir=out_dir, progress=False)

    def register() -> str:
        with session_scope() as session:
            return register_checkpoint(session, checkpoint=Path(result.checkpoint), settings=settings).hash

    model_hash = with_db_retry(register, what=f"train job {request.job_id}")
    return model_hash, _summary(result.metrics)


def _summary(metrics: dict[str, Any]) -> str:
    for key in ("val_accuracy", "accuracy", "test_accuracy"):
        value = metrics.get(key)
        if isinstance(value, int | float):
            return f"{key.replace('_', ' ')} {value:.3f}"
    return "no accuracy reported"


def _start(job_id: int) -> str | None:
    """The job's state before this run; a job that may run is marked running."""
    with session_scope() as session:
        try:
            job = jobs.get_job(session, job_id)
        except TileclassError:
            return None
        previous = job.state
        if previous not in (JobState.COMPLETED, JobState.CANCELLED):
            jobs.set_state(session, job_ids=[job_id], state=JobState.RUNNING, message="training")
        return previous


def _finish(job_id: int, state: JobState, message: str, model_hash: str | None) -> None:
    with session_scope() as session:
        if model_hash is not None:
            jobs.get_job(session, job_id).model_hash = model_hash
            session.flush()
        jobs.set_state(session, job_ids=[job_id], state=state, message=message)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = "" if isinstance(exc, TileclassError) else f"{exc.__class__.__name__}: "
    return (name + text)[:500]
