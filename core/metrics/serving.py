"""Serving Prometheus metrics: one registry on one port, and prometheus-client's multiprocess mode.

Several worker processes of one host share one port the way prometheus-client documents it: every process writes
its samples to memory-mapped files in the folder named by ``PROMETHEUS_MULTIPROC_DIR`` (set before any process
imports the client), the folder is emptied before the processes start, the serving process answers from a
``MultiProcessCollector`` over that folder, and ``mark_process_dead`` drops the live gauges of a process that
exited. ``tileclass worker --metrics-port`` runs exactly that (``MultiprocessMetrics``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from core.errors import TileclassError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger(__name__)


class MetricsServerError(TileclassError):
    """The metrics server cannot listen where it was asked to."""


def serve(registry: Collector, *, host: str, port: int) -> Any:
    """Serve ``registry`` at ``http://host:port/metrics`` from a daemon thread; returns the server (``shutdown()``)."""
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise MetricsServerError(f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}): "
                                 "choose another port with --metrics-port / --port") from None
    log.info("serving Prometheus metrics on http://%s:%d/metrics", host, port)
    return server


def process_registry() -> Collector:
    """What a worker process that serves its own metrics exposes: every process's samples in multiprocess mode
    (``PROMETHEUS_MULTIPROC_DIR`` set, e.g. Celery's prefork pool), else this process's default registry."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)
    return registry


class MultiprocessMetrics:
    """One port for a launcher's child processes: a fresh multiprocess folder (``PROMETHEUS_MULTIPROC_DIR`` if
    set, else a temporary one, removed at the end), served from this process."""

    def __init__(self, *, host: str, port: int, folder: str | None = None) -> None:
        self.host, self.port = host, port
        self.own_folder = folder is None
        self.folder = Path(folder or tempfile.mkdtemp(prefix="tileclass-metrics-"))
        self.server: Any = None

    def __enter__(self) -> MultiprocessMetrics:
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("*.db"):  # samples of an earlier run: the client asks for a wiped folder
            stale.unlink()
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.folder))
        try:
            self.server = serve(registry, host=self.host, port=self.port)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    @property
    def child_env(self) -> dict[str, str]:
        """What each child process needs in its environment to write its samples here."""
        return {MULTIPROC_ENV: str(self.folder)}

    def process_exited(self, pid: int) -> None:
        """Drop the live gauges of a child that exited (its counters and histograms keep counting)."""
        mark_process_dead(pid, str(self.folder))

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
