"""Training runs sent to a train worker: a new one (``tileclass train --queue``) and a lost one again
(``tileclass resume JOB``), both through ``send_training``.

A run's job is queued before its message leaves, so a fast worker's ``running`` is never overwritten; a message
the broker refuses, or a broker that cannot be reached, marks the job failed with why (it must not wait for ever)
and is one line for the user.

A lost run (its worker died mid-way, its lease expired: ``core.leases``) keeps its job id: it goes back to
``queued`` with nobody holding it, and the same request (data folder and training options, as recorded when it was
first queued) is sent to the ``train`` queue. The worker that takes it continues from the last epoch checkpoint the
lost run wrote (``train-job-<id>/epochs/``, worker/training.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery

from core import jobs, leases
from core.db import session_scope
from core.errors import TileclassError
from core.job_states import JobKind, JobState
from core.messages import TRAIN_QUEUE, TRAIN_TASK, TrainRequest
from core.sources import training_data
from producer.resume import CannotResume
from producer.session import open_session


def queue_training(data_dir: Path, config: dict[str, Any]) -> int:
    """Create a training job for ``data_dir`` with ``config`` (``TrainConfig`` as a dict) and send it; its id."""
    with open_session() as session:
        job_id = jobs.create_job(session, kind=JobKind.TRAIN, source=training_data(data_dir, config)).id
        jobs.set_state(session, job_ids=[job_id], state=JobState.QUEUED, message="waiting for a train worker")
    send_training(TrainRequest(job_id, str(data_dir.resolve()), config))
    return job_id


def resend_training(job_id: int, *, app: Celery) -> dict[str, Any]:
    """Queue a lost training job's run again; ``CannotResume`` says why a job cannot be."""
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        if not leases.is_lost(job):
            shown = "running (its worker still renews its lease)" if job.state == JobState.RUNNING else job.state
            raise CannotResume(f"training job {job_id} is {shown}: only a lost training job can be resumed")
        config = job.source.get("config")
        if not isinstance(config, dict) or not job.source.get("path"):
            raise CannotResume(f"training job {job_id} does not record its training options (queued by an older "
                               "tileclass): queue it again with 'tileclass train --queue'")
        request = TrainRequest(job_id, str(job.source["path"]), config)
        leases.send_again(session, job_id=job_id, message="sent again after its run was lost")
    send_training(request, app=app)
    return {"job_id": job_id, "state": JobState.QUEUED, "kind": "train"}


def send_training(request: TrainRequest, *, app: Celery | None = None) -> None:
    """Send a training run's request to the ``train`` queue (``app``: the connected one by default); a broker that
    refuses it or cannot be reached marks its job failed and raises ``TileclassError``, one line."""
    from core.celery_app import connected_app

    try:
        (app or connected_app()).send_task(TRAIN_TASK, kwargs={"request": request.to_message()}, queue=TRAIN_QUEUE)
    except Exception as exc:  # the broker refused or is unreachable: the job must not wait for ever
        with session_scope() as session:
            jobs.set_state(session, job_ids=[request.job_id], state=JobState.FAILED,
                           message=f"could not queue: {exc}")
        raise TileclassError(f"could not send training job {request.job_id} to the broker: {exc}") from None
