"""``/metrics``: the fleet exporter (``core.metrics.fleet``) for Prometheus, the same registry ``tileclass metrics``
serves: batches waiting per queue, each job's tiles by state, tiles/s (README "Metrics").

A plain ``def`` route, so FastAPI runs the scrape's database and broker reads in its threadpool, off the event loop.
Like every route but the health checks, it asks for the token when one is configured: give Prometheus the token
(``authorization: {credentials: ...}`` in its scrape config).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """The Prometheus text exposition of the fleet's queues and jobs."""
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
