"""The FastAPI app: every router, the static files, the token gate and (only when asked) CORS.

``create_app()`` reads the settings (``TILECLASS_API_TOKEN``, ``TILECLASS_API_JSON_LIMIT``); ``tileclass serve``
passes its own ``ServeConfig`` and runs the app under uvicorn (``api.server``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from api import docs, errors
from api.auth import TokenGate
from api.config import ServeConfig
from api.head import AnswerHead
from api.imagery import ImageryReaders
from api.imagery_gate import ImageryGate
from api.routes import (
    assessments,
    corrections,
    diff_overlay,
    diffs,
    imagery,
    jobs,
    metrics,
    models,
    overlay,
    page,
    regions,
    review,
    session,
    tiles,
)
from api.routes.page import STATIC
from api.throttle import Throttle
from core.metrics.fleet import fleet_registry
from core.settings import get_settings


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The app, configured by ``config`` (default: from the settings)."""
    settings = get_settings()
    config = config or ServeConfig.from_settings(settings)
    app = FastAPI(title="tileclass", version=_version(), docs_url=None, redoc_url=None, lifespan=_lifespan,
                  description="Tile classification results: jobs, models, tiles, regions, overlay tiles and imagery.")
    app.state.config = config
    app.state.throttle = Throttle()  # wrong tokens per client address, for the gate and the login form
    app.state.imagery = ImageryReaders(settings)
    app.state.imagery_gate = ImageryGate()
    app.state.metrics = fleet_registry(settings)
    errors.install(app)
    for module in (page, session, docs, jobs, review, corrections, assessments, models, tiles, regions, diffs,
                   diff_overlay, overlay, imagery, metrics):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(AnswerHead)  # innermost: HEAD runs as the GET it asks about, behind the token gate
    # Added last, so outermost: a CORS preflight is answered before the token is asked for.
    app.add_middleware(TokenGate, token=config.token, write_token=config.write_token, throttle=app.state.throttle)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET"],
                           allow_headers=["Authorization"], expose_headers=["ETag"])
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    # The server is stopping: imagery reads still waiting on a tile server end now, or the process would wait for
    # their threads before it exits.
    app.state.imagery_gate.close()


def _version() -> str:
    try:
        return version("tileclass")
    except PackageNotFoundError:
        return "0"
