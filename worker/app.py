"""The Celery app with tileclass's tasks registered: the target of ``celery -A worker.app worker``.

    celery -A worker.app worker -Q classify --pool solo          # what `tileclass worker` runs per GPU/CPU slot

This is the one module that builds a Celery app when it is imported (Celery's ``-A`` needs it there); it still
writes nothing until the worker starts, when the embedded broker's folders are made. The solo pool keeps the
model in the process that runs the tasks. The prefork pool works too: each child loads
the model lazily on its first batch, after the fork, so CUDA is never initialised in a process that forks.
Settings come from the same ``TILECLASS_*`` variables as everywhere else.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from celery.signals import worker_init, worker_process_init, worker_process_shutdown, worker_ready, worker_shutting_down

from core.celery_app import make_app, prepare_broker
from core.errors import TileclassError
from core.settings import get_settings
from core.sources.deadline import stop_fetches
from worker import host_errors, idle, metrics, tasks
from worker.startup import settings_or_exit

__all__ = ["app"]
log = logging.getLogger(__name__)
app = make_app(settings_or_exit())  # a bad setting is one line here, not Celery's traceback of this import
tasks.register(app)


@worker_init.connect
def _check_before_consuming(sender: Any = None, **_: Any) -> None:
    prepare_broker(get_settings())
    check_broker()
    serve_metrics()
    # In a forking pool the parent must not touch CUDA (its children could not use it): check there instead.
    pool = str(getattr(sender, "pool_cls", "") or "")
    if "solo" in pool or "threads" in pool:
        check_device()


@worker_ready.connect
def _start_afresh(sender: Any = None, **_: Any) -> None:
    host_errors.host_started(str(getattr(sender, "hostname", "") or "worker"))
    idle.start(str(getattr(sender, "hostname", "") or "worker"), get_settings())


@worker_shutting_down.connect
def _stop_fetching(**_: Any) -> None:
    """SIGTERM or Ctrl-C (sent from the signal handler of the process running the tasks, the solo pool's): the
    batch's tile fetches end now, whatever their servers are doing, and ``worker.tasks`` puts the batch back, so
    the warm shutdown is not held by a slow tile server (``core.sources.deadline``)."""
    stop_fetches()


@worker_process_init.connect
def _check_in_pool_child(**_: Any) -> None:
    check_device()


@worker_process_shutdown.connect
def _forget_live_metrics(pid: int | None = None, **_: Any) -> None:
    """A prefork child that exits takes its live gauges along (multiprocess mode: prometheus-client's own advice)."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid or os.getpid(), folder)


def check_broker() -> None:
    """Refuse to start against a broker that rejects the configured password (Celery would retry for ever)."""
    from worker.brokercheck import check_broker_credentials

    try:
        check_broker_credentials(get_settings())
    except TileclassError as exc:
        log.critical("cannot start a tileclass worker: %s", exc)
        sys.exit(2)


def serve_metrics() -> None:
    """Serve this worker's Prometheus metrics when ``TILECLASS_WORKER_METRICS_PORT`` asks for it (a plain Celery
    worker; under ``tileclass worker --metrics-port`` the launcher serves its children's instead)."""
    settings = get_settings()
    if not settings.worker.metrics_port:
        return
    from core.metrics.serving import process_registry, serve

    try:
        serve(process_registry(), host=settings.metrics.host, port=settings.worker.metrics_port)
    except TileclassError as exc:
        log.critical("cannot start a tileclass worker: %s", exc)
        sys.exit(2)


def check_device() -> None:
    """Refuse to start a worker whose device cannot be used, instead of failing every batch it takes."""
    from model.device import resolve_device

    try:
        device = resolve_device(get_settings().device)
    except TileclassError as exc:
        log.critical("cannot start a tileclass worker: %s", exc)
        sys.exit(2)
    metrics.device_in_use(str(device))
    log.info("tileclass worker will classify on %s", device)
