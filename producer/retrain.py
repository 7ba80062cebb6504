"""Sending a lost training job again: the run whose worker died mid-way (its lease expired, ``core.leases``).

The job keeps its id: it goes back to ``queued`` with nobody holding it, and the same request (data folder and
training options, as recorded when it was first queued) is sent to the ``train`` queue. The worker that takes it
continues from the last epoch checkpoint the lost run wrote (``train-job-<id>/epochs/``, worker/training.py).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from core import jobs, leases
from core.db import session_scope
from core.messages import TRAIN_QUEUE, TRAIN_TASK, TrainRequest
from core.schema import JobState
from producer.resume import CannotResume


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
        leases.release(job)
        jobs.set_state(session, job_ids=[job_id], state=JobState.QUEUED, message="sent again after its run was lost")
    app.send_task(TRAIN_TASK, kwargs={"request": request.to_message()}, queue=TRAIN_QUEUE)
    return {"job_id": job_id, "state": JobState.QUEUED, "kind": "train"}
