"""The lightweight worker of bench/scale.py: tileclass's classify task with the model replaced by a stand-in.

    celery -A bench.lib.scale_standin worker --pool solo -Q classify     # from the repository root

Everything around the model is the product's own code, so that the broker and the database carry what real
workers make them carry: the message contract (``core.messages``), the job and model lookup in a read transaction,
the run markers in Redis (``worker.deliveries``), one transaction of results, locks and batch counts plus the job's
refresh (``worker.recording``), and the worker's metrics (``worker.metrics``). The stand-in returns the same fixed
probabilities for every tile and never reads a tile; it imports no torch. It lives in bench/ only, never in the
product.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Task

from core.celery_app import make_app
from core.db import session_scope
from core.messages import CLASSIFY_TASK, SENT_AT_HEADER, ClassifyBatch
from core.results import Classified
from core.schema import Job, Model
from core.settings import get_settings
from worker import deliveries, metrics
from worker.recording import BatchOutcome, record_outcome

CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
           "Residential", "River", "SeaLake")
PROBABILITIES = {name: (0.82 if name == "Forest" else 0.02) for name in CLASSES}

app = make_app()


@app.task(name=CLASSIFY_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def classify_batch(self: Task, batch: dict[str, Any]) -> dict[str, Any]:
    """The real task's path with fixed probabilities instead of a forward pass."""
    started = time.perf_counter()
    metrics.queue_wait(self.request.get(SENT_AT_HEADER))
    request = ClassifyBatch.from_message(batch)
    settings = get_settings()
    with session_scope() as session:  # what worker.batches looks up before a batch runs
        job = session.get(Job, request.job_id)
        registered = session.get(Model, request.model_hash) is not None
    if job is None:
        return {"dropped": "unknown job"}
    markers = deliveries.RunMarkers(settings, job_id=request.job_id, seq=request.seq)
    markers.begin()
    outcome = BatchOutcome(classified=[Classified(tile, "Forest", 0.82, PROBABILITIES) for tile in request.tiles])
    times = metrics.StageTimes()
    writing = time.perf_counter()
    record_outcome(request, outcome, model_registered=registered)
    times.add("write", time.perf_counter() - writing)
    markers.settled()
    metrics.batch_recorded(job_id=request.job_id, model_hash=request.model_hash, classified=len(request.tiles),
                           failed=0, empty=0, times=times, started=started)
    metrics.batch_outcome("done")
    return {"classified": len(request.tiles)}
