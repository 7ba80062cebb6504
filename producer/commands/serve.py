"""``tileclass serve``: the web map, the JSON API and overlay tiles over the configured results database.

It binds 127.0.0.1 unless ``--host`` says otherwise; another address needs ``TILECLASS_API_TOKEN`` (every request
then carries it) or the explicit ``--insecure-no-token``. Writes (the map's review) always need a token: without
``TILECLASS_API_TOKEN`` the server makes one for this run and prints it as a login URL, as Jupyter does. The port is
bound before the "serving http://…" line is printed; a port in use is one line and exit code 2. The server needs the
``serve`` extra (FastAPI, uvicorn), no torch.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from typing import Annotated

import typer

from core.errors import TileclassError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on. Anything but loopback needs TILECLASS_API_TOKEN "
                                      "(or --insecure-no-token).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    cors_origin: Annotated[list[str], typer.Option(
        "--cors-origin", metavar="ORIGIN", help="Let web pages from this origin (e.g. https://maps.example.org) "
        "call the API from a browser; repeat for several. Default: TILECLASS_API_CORS_ORIGINS (none: CORS "
        "off).")] = [],  # noqa: B006
    insecure_no_token: Annotated[bool, typer.Option(
        "--insecure-no-token", help="Serve beyond loopback without a token: anyone who reaches the port reads every "
        "result.")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes sharing the port: a Python process "
                                         "serves one request at a time, so use about one per core for many "
                                         "clients.")] = 1,
    log_level: Annotated[str, typer.Option(help="Server log level: " + ", ".join(LOG_LEVELS) + ".")] = "info",
) -> None:
    """Serve the web map (/), the JSON API (/api, OpenAPI at /docs) and overlay tiles (/overlay) of the results."""
    from api.config import ServeConfig, check_exposure, make_run_token
    from core.settings import get_settings
    from producer.session import open_session

    if log_level not in LOG_LEVELS:
        raise TileclassError(f"unknown --log-level {log_level!r}: choose {', '.join(LOG_LEVELS)}")
    require_serve_extra()
    settings = get_settings()
    if cors_origin:  # this run's settings; every server process gets the configuration made of them (api.server)
        settings = settings.model_copy(update={"api": settings.api.model_copy(update={"cors_origins": cors_origin})})
    config = ServeConfig.from_settings(settings)
    check_exposure(host, config, insecure_no_token=insecure_no_token)
    with open_session():  # a fresh SQLite file gets its tables before the first read
        pass
    from api.server import serve as run
    from api.sockets import listen

    listener = listen(host, port)  # the line below announces a port that is already ours
    if config.token is None:  # writes still need one: this run's own, in the configuration every process gets
        config = replace(config, run_token=make_run_token())
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"tileclass serving http://{shown}:{port}/ (the map), /docs (the API), /overlay/MODEL/tilejson.json "
               f"(the GIS layer){'; requests need TILECLASS_API_TOKEN' if config.token else ''}", err=True)
    if config.run_token is not None:
        typer.echo(f"writes (the map's review) need this run's token; this URL signs a browser in: "
                   f"http://{shown}:{port}/login?token={config.run_token}", err=True)
    run(listener=listener, config=config, log_level=log_level, workers=workers)


def require_serve_extra() -> None:
    """A one-line error naming the ``serve`` extra when FastAPI or uvicorn is not installed."""
    missing = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise TileclassError(f"'tileclass serve' needs {' and '.join(missing)}: install them with pip install "
                             "'tileclass[serve]'")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
