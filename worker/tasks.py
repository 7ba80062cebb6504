"""The Celery tasks: translate the message, call worker/model/core, and decide between retrying and giving up.

``tileclass.classify_batch.v2`` (and ``tileclass.classify_batch``, format 1, for messages an older producer left
in a queue; see core/messages.py) gives a batch that raised an unexpected error ``TILECLASS_WORKER_MAX_RETRIES``
more tries (re-sent with a short, growing delay); after the last one its tiles are recorded as failed and the
message is acknowledged, so a poison batch can never block the queue. Transient database errors are retried
inside each step first (``runtime.with_db_retry``). A problem of the host rather than the batch (``HostError``, or
the database still unreachable after those retries) goes to ``worker.host_errors``: the batch is put back, no
tile fails, and the job pauses on this worker for a cooldown. A batch interrupted by the worker's own shutdown is
put back as it is, with no retry counted, no pause and no host problem recorded: its tile fetches stopped by the
warm shutdown (``FetchStopped``), or, after a second Ctrl-C, Celery's cold shutdown, which cannot kill a task of the
solo pool and raises ``NotImplementedError`` into it instead.

``tileclass.train`` is acknowledged when it starts, not when it ends: a training run outlives Redis's visibility
timeout, and a late ack would let the broker hand the same run to a second worker while the first still trains.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.worker import state as worker_state
from sqlalchemy.exc import DBAPIError

from core.errors import HostError
from core.messages import CLASSIFY_TASK, CLASSIFY_TASK_V1, SENT_AT_HEADER, TRAIN_TASK, ClassifyBatch, TrainRequest
from core.settings import Settings, get_settings
from core.sources.deadline import FetchStopped, stop_fetches
from worker import host_errors, metrics
from worker.runtime import is_transient_db_error

log = logging.getLogger(__name__)


def retry_delay(retries: int) -> float:
    """Seconds before try ``retries + 1`` of a failing batch: 2, 4, 8 … capped at a minute."""
    return float(min(2 ** (retries + 1), 60))


def register(app: Celery) -> None:
    """Register the tasks on ``app`` under their names (both classify formats run the same function)."""
    for name in (CLASSIFY_TASK, CLASSIFY_TASK_V1):
        app.task(name=name, bind=True, acks_late=True, reject_on_worker_lost=True, shared=False)(classify_batch)
    app.task(name=TRAIN_TASK, acks_late=False, shared=False)(train)


def classify_batch(self: Task, batch: dict[str, Any]) -> dict[str, Any]:
    """Classify one batch of tiles and record the results (see the module docstring for failures)."""
    metrics.queue_wait(self.request.get(SENT_AT_HEADER))
    summary = _classify_batch(self, batch)
    metrics.batch_outcome(_outcome(summary))
    return summary


def _classify_batch(self: Task, batch: dict[str, Any]) -> dict[str, Any]:
    from worker import batches

    try:
        request = ClassifyBatch.from_message(batch)
    except (KeyError, TypeError, ValueError) as exc:
        log.error("dropping a malformed classify message (%s: %s)", exc.__class__.__name__, exc)
        return {"dropped": "malformed message"}
    settings = get_settings()
    if (reason := host_errors.paused(request.job_id)) is not None:
        wait = host_errors.put_back(self, request, settings)
        log.info("job %d batch %d: job paused on this host (%s); put back in %.0f s", request.job_id, request.seq,
                 reason, wait)
        return {"put_back": reason}
    try:
        summary = batches.run_batch(request, settings)
    except FetchStopped as exc:  # the worker is shutting down: not this host's problem with the job
        return _put_back_stopping(self, request, settings, exc.reason)
    except HostError as exc:
        return host_errors.handle(self, request, exc, settings)
    except DBAPIError as exc:
        if not is_transient_db_error(exc):
            return _retry_or_fail(self, request, exc, settings)
        # Retried inside each step already: the database is down for this host, not the tiles' fault.
        reason = f"results database unreachable: {str(exc.orig or exc).splitlines()[0][:200]}"
        return host_errors.handle(self, request, HostError(reason), settings)
    except Exception as exc:  # anything unexpected: bounded retries, then the tiles fail and the queue drains
        if _worker_stopping():  # e.g. the cold shutdown's NotImplementedError: the batch is not at fault
            return _put_back_stopping(self, request, settings, f"worker stopping ({exc.__class__.__name__})")
        return _retry_or_fail(self, request, exc, settings)
    host_errors.served(self, request.job_id)
    return summary


def _worker_stopping() -> bool:
    """Whether this worker received a warm or cold shutdown (Celery's flags, set to an exit code, often 0)."""
    return worker_state.should_stop is not None or worker_state.should_terminate is not None


def _put_back_stopping(self: Task, request: ClassifyBatch, settings: Settings, reason: str) -> dict[str, Any]:
    stop_fetches()  # whatever interrupted the batch, its reads still running must not hold the process's exit
    wait = host_errors.put_back(self, request, settings)
    log.warning("job %d batch %d: %s; batch put back in %.0f s", request.job_id, request.seq, reason, wait)
    return {"put_back": reason}


def _outcome(summary: dict[str, Any]) -> str:
    """The ``tileclass_batches_total`` outcome of a task's summary (a retry raises instead of returning)."""
    for key, outcome in (("dropped", "dropped"), ("put_back", "put_back"), ("gave_up", "failed")):
        if key in summary:
            return outcome
    return "done"


def _retry_or_fail(self: Task, request: ClassifyBatch, exc: Exception, settings: Settings) -> dict[str, Any]:
    from worker import batches

    retries = self.request.retries
    if retries < settings.worker.max_retries:
        log.warning("job %d batch %d failed (%s: %s); retry %d of %d", request.job_id, request.seq,
                    exc.__class__.__name__, exc, retries + 1, settings.worker.max_retries, exc_info=True)
        metrics.batch_outcome("retried")
        raise self.retry(exc=exc, countdown=retry_delay(retries), max_retries=settings.worker.max_retries) from exc
    reason = f"batch failed {retries + 1} times: {exc.__class__.__name__}: {str(exc)[:300]}"
    log.error("job %d batch %d: giving up, %s", request.job_id, request.seq, reason, exc_info=True)
    batches.fail_batch(request, reason)
    return {"failed": len(request.tiles), "gave_up": reason}


def train(request: dict[str, Any]) -> dict[str, Any]:
    """Run a training request from the ``train`` queue and register the model it produces."""
    from worker import training

    try:
        parsed = TrainRequest.from_message(request)
    except (KeyError, TypeError, ValueError) as exc:
        log.error("dropping a malformed train message (%s: %s)", exc.__class__.__name__, exc)
        return {"dropped": "malformed message"}
    return training.run_training(parsed, get_settings())
