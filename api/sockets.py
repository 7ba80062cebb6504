"""The listening socket of ``tileclass serve``: bound before anything says where the server is.

uvicorn binds its port only once the app is built, so a line printed before it announced a server that then failed
with "address already in use". ``listen`` binds and listens first, turning the usual failures (a port in use, an
address not of this host, a privileged port) into one line; ``run`` hands the socket to uvicorn, for one server
process or several sharing it. Connections that arrive before uvicorn accepts wait in the listen backlog.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from core.errors import TileclassError

BACKLOG = 2048  # uvicorn's own default


class ListenError(TileclassError):
    """The server cannot listen where it was asked to."""


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` and listening; ``ListenError`` (one line) when it cannot be."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # As uvicorn does: a port left in TIME_WAIT by the previous server can be bound again; a port that another
        # socket listens on cannot.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenError(_why(exc, host, port, where)) from None
    sock.set_inheritable(True)  # several server processes share it
    return sock


def _why(exc: OSError, host: str, port: int, where: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"cannot serve on {where}: the port is already in use (another 'tileclass serve'?); stop that "
                "server or choose another port with --port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot serve on {where}: {host} is not an address of this host; --host 127.0.0.1 serves loopback"
    if exc.errno == errno.EACCES:
        return f"cannot serve on {where}: port {port} needs privileges; choose one above 1023 with --port"
    return f"cannot serve on {where}: {exc.strerror or exc}"


def run(sock: socket.socket, *, app: Any, workers: int, options: dict[str, Any]) -> None:
    """Serve ``app`` (with ``workers`` > 1: an app factory that pickles, for the spawned processes) on the bound
    ``sock`` until stopped; ``options`` are uvicorn's."""
    config = uvicorn.Config(app, workers=workers, factory=workers > 1, **options)
    try:
        if workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # as uvicorn.run: Ctrl-C during start-up ends quietly too
        pass
    finally:
        sock.close()
