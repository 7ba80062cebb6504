"""Running the app under uvicorn, with the token never written to the access log.

uvicorn logs each request line with its query string as sent; a map's tile URL may carry ``?token=…`` (GIS clients
that can only be given a URL). ``RedactTokens`` rewrites the value of every parameter that the token gate reads as
the token (``api.auth.is_token_name``: ``tok%65n=`` too) to ``***`` before the line is formatted, wherever the
access log goes.
"""

from __future__ import annotations

import copy
import functools
import logging
import socket
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from api.auth import is_token_name
from api.config import ServeConfig
from api.main import create_app
from api.sockets import run

# Seconds a stopping server lets the requests in flight finish before it cancels them (uvicorn waits for ever
# otherwise: a client that reads slowly, or an imagery read on a slow tile server, held SIGTERM off).
GRACEFUL_SHUTDOWN = 3


class RedactTokens(logging.Filter):
    """Hides token parameters in uvicorn's access records (``args``: client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def redact(text: str) -> str:
    """``text`` (a path and query) with the value of every token parameter replaced by ``***``."""
    path, mark, query = text.partition("?")
    if not mark:
        return text
    pieces = (piece.partition("=") for piece in query.split("&"))
    return path + "?" + "&".join(f"{name}=***" if is_token_name(name) else name + equals + value
                                 for name, equals, value in pieces)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration with ``RedactTokens`` on its access handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_tokens": {"()": RedactTokens}}
    config["handlers"]["access"]["filters"] = ["redact_tokens"]
    for name in ("uvicorn", "uvicorn.access"):
        config["loggers"][name]["level"] = level.upper()
    return config


def serve(*, listener: socket.socket, config: ServeConfig, log_level: str = "info", workers: int = 1) -> None:
    """Serve until stopped (Ctrl-C or SIGTERM: uvicorn lets the requests in flight finish for up to
    ``GRACEFUL_SHUTDOWN`` seconds, then cancels them; the app's lifespan ends its imagery reads).

    With ``workers`` > 1 uvicorn runs that many server processes on one socket (Python serves a request at a time
    per process); each is handed ``config`` itself (uvicorn spawns them and pickles their app factory,
    ``create_app`` bound to it), so this run's options and token reach them without the environment. They serve on
    ``listener``, bound beforehand (``api.sockets.listen``).
    """
    host, port = listener.getsockname()[:2]  # for uvicorn's own lines
    options: dict[str, Any] = {"host": host, "port": port, "log_config": log_config(log_level),
                               "server_header": False, "proxy_headers": True, "forwarded_allow_ips": "127.0.0.1",
                               "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN}
    app = create_app(config) if workers == 1 else functools.partial(create_app, config)
    run(listener, app=app, workers=workers, options=options)
