"""The worker's Prometheus metrics: what its batches did, where their time went, what it holds loaded.

Defined once per process at import. Under ``tileclass worker --metrics-port`` every child writes them to the
launcher's multiprocess folder (``core.metrics.serving``) and the launcher serves the host's sum on one port; a
plain Celery worker with ``TILECLASS_WORKER_METRICS_PORT`` serves its own (``worker.app``). Names are the
interface the README lists::

    tileclass_tiles_total{outcome="classified"|"failed"|"empty", job, model}   tiles recorded
    tileclass_batches_total{outcome="done"|"failed"|"retried"|"put_back"|"dropped"}
    tileclass_batch_stage_seconds{stage="read"|"decode"|"inference"|"write"}   per batch (histogram)
    tileclass_batch_seconds                          a batch from message to committed results (histogram)
    tileclass_batch_queue_wait_seconds               from the producer's send to a worker starting it (histogram)
    tileclass_model_load_seconds                     loading (and quantizing) a checkpoint (histogram)
    tileclass_model_cache_models{model}              worker processes holding that model loaded (gauge)
    tileclass_worker_device{device}                  worker processes classifying on that device (gauge)

``read`` (files, archives, tile servers) and ``decode`` run on the decode threads and are their summed time, so
with two decode threads they may add up to twice the batch's wall-clock time; ``inference`` and ``write`` are
wall-clock. The hot path only adds to a ``StageTimes`` per tile (two clock reads); samples are written once per
batch.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram

# Seconds: a batch of 1024 tiles takes from a few tenths of a second (a GPU) to minutes (one CPU thread).
BATCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120, 300, 600)
WAIT_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
STAGES = ("read", "decode", "inference", "write")
HASH_PREFIX = 12  # as the CLI shows model hashes

TILES = Counter("tileclass_tiles", "Tiles a worker recorded, by outcome", ["outcome", "job", "model"])
BATCHES = Counter("tileclass_batches", "Classify batches a worker took, by what became of them", ["outcome"])
STAGE_SECONDS = Histogram("tileclass_batch_stage_seconds", "A batch's time per stage (read and decode summed over "
                          "the decode threads)", ["stage"], buckets=BATCH_BUCKETS)
BATCH_SECONDS = Histogram("tileclass_batch_seconds", "A batch from message to committed results",
                          buckets=BATCH_BUCKETS)
QUEUE_WAIT_SECONDS = Histogram("tileclass_batch_queue_wait_seconds", "Time from the producer's send to a worker "
                               "starting the batch", buckets=WAIT_BUCKETS)
MODEL_LOAD_SECONDS = Histogram("tileclass_model_load_seconds", "Loading a checkpoint into a worker process",
                               buckets=LOAD_BUCKETS)
MODELS_LOADED = Gauge("tileclass_model_cache_models", "Worker processes holding the model loaded", ["model"],
                      multiprocess_mode="livesum")
DEVICE = Gauge("tileclass_worker_device", "Worker processes classifying on the device", ["device"],
               multiprocess_mode="livesum")


@dataclass
class StageTimes:
    """One batch's seconds per stage, added to from the decode threads and the task's thread."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds


def batch_recorded(*, job_id: int, model_hash: str, classified: int, failed: int, empty: int,
                   times: StageTimes | None = None, started: float | None = None) -> None:
    """A batch's results are committed: count its tiles, and observe its stages and total time if measured."""
    job, model = str(job_id), model_hash[:HASH_PREFIX]
    for outcome, count in (("classified", classified), ("failed", failed), ("empty", empty)):
        if count:
            TILES.labels(outcome, job, model).inc(count)
    if times is not None:
        for stage, seconds in times.seconds.items():
            STAGE_SECONDS.labels(stage).observe(seconds)
    if started is not None:
        BATCH_SECONDS.observe(time.perf_counter() - started)


def batch_outcome(outcome: str) -> None:
    """What became of a classify message: done, failed (given up), retried, put_back (host problem), dropped."""
    BATCHES.labels(outcome).inc()


def queue_wait(sent_at: object) -> None:
    """Observe how long a batch waited, from the send time its producer put in the message's headers."""
    if isinstance(sent_at, int | float) and not isinstance(sent_at, bool):
        QUEUE_WAIT_SECONDS.observe(max(0.0, time.time() - float(sent_at)))


def model_loaded(model_hash: str) -> None:
    MODELS_LOADED.labels(model_hash[:HASH_PREFIX]).set(1)


def model_dropped(model_hash: str) -> None:
    MODELS_LOADED.labels(model_hash[:HASH_PREFIX]).set(0)


def device_in_use(device: str) -> None:
    DEVICE.labels(device).set(1)
