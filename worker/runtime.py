"""What a worker process keeps between tasks: torch's thread setup, a decode thread pool and loaded models.

Everything is created lazily in the process that runs tasks (after any fork of Celery's prefork pool), and
recreated if the process id changes. Models are kept in a small LRU cache keyed by content hash: a job names its
model by hash, the checkpoint is found through the registry and loaded with that hash as ``expected_sha256``, so
a file that does not match is refused instead of silently classifying with other weights.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from core.errors import HostError, TileclassError
from core.settings import Settings
from worker import metrics

if TYPE_CHECKING:
    from pathlib import Path

    from model.predict import Classifier

T = TypeVar("T")
DB_RETRIES = 6  # about 0.5 + 1 + 2 + 4 + 8 + 16 s: a database restart or failover, not an outage
log = logging.getLogger(__name__)


class ModelUnavailable(TileclassError):
    """No worker can use the batch's model: it is not registered, or its checkpoint is unsafe or inconsistent."""


# SQLSTATEs of a session the server ended that psycopg does not class as operational: the idle timeout of a
# writer that was frozen holding tile locks (core.results.lock_tiles). A new transaction goes through.
SERVER_ENDED_SESSION = frozenset({"25P03"})


def is_transient_db_error(exc: BaseException) -> bool:
    """Whether a database error may go away by itself (connection lost, server restarting, lock timeout)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    return bool(exc.connection_invalidated) or getattr(exc.orig, "sqlstate", None) in SERVER_ENDED_SESSION


def with_db_retry(action: Callable[[], T], *, what: str, attempts: int = DB_RETRIES,
                  sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``action`` (one whole transaction), retrying transient database errors with exponential backoff."""
    for attempt in range(attempts):
        try:
            return action()
        except DBAPIError as exc:
            if not is_transient_db_error(exc) or attempt == attempts - 1:
                raise
            delay = 0.5 * 2**attempt * (1 + random.random() * 0.25)
            log.warning("%s: temporary database error (%s); retrying in %.1f s", what,
                        str(exc.orig or exc).splitlines()[0][:200], delay)
            sleep(delay)
    raise AssertionError("unreachable")


class ModelCache:
    """Loaded classifiers by content hash, least recently used dropped first."""

    def __init__(self, capacity: int, loader: Callable[[str, Path], Classifier]) -> None:
        self.capacity = capacity
        self.loader = loader
        self._models: OrderedDict[str, Classifier] = OrderedDict()

    def __contains__(self, model_hash: str) -> bool:
        return model_hash in self._models

    def loaded(self) -> list[str]:
        """The hashes of the models held, least recently used first."""
        return list(self._models)

    def get(self, model_hash: str, checkpoint: Callable[[], Path]) -> Classifier:
        """The classifier for ``model_hash``, loading it from ``checkpoint()`` on first use."""
        model = self._models.get(model_hash)
        if model is not None:
            self._models.move_to_end(model_hash)
            return model
        model = self.loader(model_hash, checkpoint())
        self._models[model_hash] = model
        metrics.model_loaded(model_hash)
        while len(self._models) > self.capacity:
            dropped, _ = self._models.popitem(last=False)
            metrics.model_dropped(dropped)
            log.info("model %s dropped from this worker's cache", dropped[:12])
        return model


def load_classifier(model_hash: str, path: Path, settings: Settings) -> Classifier:
    """Load a checkpoint for inference with the worker's device, precision and compilation settings."""
    from model.errors import CheckpointError, ChecksumMismatch, DeviceError, QuantizationImagesMissing
    from model.predict import Classifier

    def load(precision: str) -> Classifier:
        return Classifier.load(path, device=settings.device, precision=precision, expected_sha256=model_hash,
                               compile=settings.worker.compile, batch_size=settings.worker.batch_size,
                               tta_views=settings.worker.tta_views if settings.worker.tta else 1)

    started = time.perf_counter()
    try:
        try:
            classifier = load(settings.worker.precision)
        except QuantizationImagesMissing as exc:
            # An older checkpoint on an int8 worker: classify it anyway, at the best float precision.
            log.warning("model %s: %s; running it at precision auto instead", model_hash[:12], exc)
            classifier = load("auto")
    except DeviceError as exc:
        raise HostError(f"device {settings.device} unusable: {exc}", broken=True) from None
    except (ChecksumMismatch, OSError) as exc:  # this host's copy is stale or unreadable; other hosts may have it
        raise HostError(f"model {model_hash[:12]} refused on this host: {exc}") from None
    except CheckpointError as exc:  # the registered file itself is unsafe or inconsistent: every host refuses it
        raise ModelUnavailable(f"model {model_hash[:12]} refused: {exc}") from None
    elapsed = time.perf_counter() - started
    metrics.MODEL_LOAD_SECONDS.observe(elapsed)
    log.info("loaded model %s (%s classes, %d px) on %s, %s, in %.1f s%s", model_hash[:12],
             len(classifier.class_names), classifier.image_size, classifier.device, classifier.precision,
             elapsed, ", compiled" if classifier.compiled else "")
    return classifier


def default_threads(settings: Settings) -> int:
    """Torch intra-op threads: the setting, else the cores this process may use."""
    return settings.worker.threads or max(1, len(os.sched_getaffinity(0)))


class WorkerRuntime:
    """The per-process state the classify task uses; get it with ``current()``."""

    def __init__(self, settings: Settings) -> None:
        import torch

        self.settings = settings
        self.pid = os.getpid()
        threads = default_threads(settings)
        torch.set_num_threads(threads)
        self.pool = ThreadPoolExecutor(max_workers=settings.worker.decode_threads, thread_name_prefix="decode")
        self.models = ModelCache(settings.worker.model_cache, lambda h, p: load_classifier(h, p, settings))
        log.info("worker runtime: device %s, %d torch thread(s), %d decode thread(s), chunks of %d, precision %s, "
                 "compile %s, test-time augmentation %s", settings.device, threads, settings.worker.decode_threads,
                 settings.worker.batch_size, settings.worker.precision, "on" if settings.worker.compile else "off",
                 f"{settings.worker.tta_views} views" if settings.worker.tta else "off")


_runtime: WorkerRuntime | None = None


def current(settings: Settings) -> WorkerRuntime:
    """This process's runtime, made on first use (and again in a forked child, which must not share it)."""
    global _runtime
    if _runtime is None or _runtime.pid != os.getpid():
        _runtime = WorkerRuntime(settings)
    return _runtime


def reset() -> None:
    """Forget this process's runtime (its models and pool): the next task builds it again from the settings."""
    global _runtime
    if _runtime is not None and _runtime.pid == os.getpid():
        _runtime.pool.shutdown(wait=False)
        for model_hash in _runtime.models.loaded():
            metrics.model_dropped(model_hash)
    _runtime = None
