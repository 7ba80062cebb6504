"""``tileclass metrics``: serve the queue-depth and job-progress exporter for Prometheus (``core.metrics.fleet``).

One exporter per deployment is enough (it reads the broker and the results database on each scrape). It listens on
127.0.0.1 unless ``--host`` (or ``TILECLASS_METRICS_HOST``) says otherwise, and runs until Ctrl-C or SIGTERM
(exit 0). ``--once`` prints the metrics once and exits: the quickest check of what a scrape would see.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import typer

DEFAULT_PORT = 9561


def metrics(
    port: int = typer.Option(DEFAULT_PORT, min=1, max=65535, help="Port of the /metrics endpoint."),
    host: str | None = typer.Option(
        None, help="Address to listen on; 0.0.0.0 for a Prometheus on another host. "
                   "Default: TILECLASS_METRICS_HOST (127.0.0.1).",
    ),
    once: bool = typer.Option(False, "--once", help="Print the metrics once (Prometheus text format) and exit."),
) -> None:
    """Export batches waiting per queue, each job's pending/classified/failed tiles and tiles/s to Prometheus.

    The metric names are listed in the README ("Metrics"); deploy/grafana/tileclass.json is a dashboard of them.
    """
    from prometheus_client import generate_latest

    from core.metrics.fleet import fleet_registry
    from core.metrics.serving import serve
    from core.settings import get_settings

    settings = get_settings()
    registry = fleet_registry(settings)
    if once:
        typer.echo(generate_latest(registry).decode(), nl=False)
        return
    address = host or settings.metrics.host
    server = serve(registry, host=address, port=port)
    typer.echo(f"serving tileclass metrics on http://{address}:{port}/metrics (Ctrl-C to stop)")
    _wait_for_stop()
    server.shutdown()


def _wait_for_stop() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def register(app: typer.Typer) -> None:
    app.command("metrics")(metrics)
