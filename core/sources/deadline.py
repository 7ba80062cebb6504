"""A total deadline for one tile fetch, and one switch that stops every fetch of the process.

httpx bounds each socket operation (a connect, each read) but not a whole request: a server that sends one byte
every few seconds keeps each read inside the read timeout for ever. So the fetch client's connections go through
``DeadlineBackend``, an httpcore network backend around the standard one: every connect, TLS handshake, write and
read of a fetch waits at most until that fetch's deadline (``within``), and a read waits in slices of ``SLICE``
seconds, so that ``stop_fetches()`` (a worker's warm shutdown) ends every fetch of the process within a slice,
whatever its server is doing; ``stopped_by(event)`` does the same for the fetches of one thread (the imagery
threads of ``tileclass serve``, when it stops). Name resolution is the one step it cannot cut short. Connections
through a proxy of the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``; ``NO_PROXY``) keep to the same
deadlines (``environment_mounts``).

A fetch past its deadline raises ``DeadlinePassed``; a fetch stopped raises ``FetchStopped``, a host error: the
batch goes back to the queue and no tile fails.
"""

from __future__ import annotations

import threading
import time
import typing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx
from httpx._utils import get_environment_proxies

from core.errors import HostError
from core.sources.base import SourceUnavailable

SLICE = 0.25  # seconds a read waits before looking at the stop switch again
_stopping = threading.Event()
# .deadline: time.monotonic() when the fetch running in this thread must end; .stop: an event that ends it too
_thread = threading.local()


class DeadlinePassed(Exception):
    """The fetch running in this thread passed its deadline (``core.sources.fetch`` says which server was slow)."""


class FetchStopped(HostError):
    """This process is stopping: its fetches end now, and the batch goes back to the queue."""

    def __init__(self) -> None:
        super().__init__("stopping: tile fetches interrupted")


def stop_fetches() -> None:
    """End every fetch of this process within ``SLICE`` seconds, and refuse new ones. A worker calls it from its
    signal handler, in the main thread, which never waits on the switch itself (fetches run on decode threads)."""
    _stopping.set()


def stopping() -> bool:
    """Whether this process's fetches, or this thread's, are to stop."""
    stop = getattr(_thread, "stop", None)
    return _stopping.is_set() or (stop is not None and stop.is_set())


def resume_fetches() -> None:
    """Undo ``stop_fetches`` (for a process that goes on, e.g. a test)."""
    _stopping.clear()


def wait(seconds: float) -> None:
    """Sleep ``seconds``, but raise ``FetchStopped`` (within a slice) as soon as the fetches are to stop."""
    ends = time.monotonic() + seconds
    while not stopping():
        left = ends - time.monotonic()
        if left <= 0:
            return
        _stopping.wait(min(left, SLICE))
    raise FetchStopped


@contextmanager
def stopped_by(event: threading.Event) -> Iterator[None]:
    """End the fetches run inside the block (in this thread) within a slice once ``event`` is set."""
    previous = getattr(_thread, "stop", None)
    _thread.stop = event
    try:
        yield
    finally:
        _thread.stop = previous


@contextmanager
def within(seconds: float) -> Iterator[float]:
    """Bound the fetch run inside the block (in this thread) to ``seconds`` in all; yields its deadline."""
    previous = getattr(_thread, "deadline", None)
    _thread.deadline = time.monotonic() + seconds
    try:
        yield _thread.deadline
    finally:
        _thread.deadline = previous


def new_transport(limits: httpx.Limits, proxy: httpx.Proxy | None = None) -> httpx.HTTPTransport:
    """An httpx transport, straight to the server or through ``proxy``, whose connections (to the proxy too) honour
    the deadlines and the stop switch.

    httpx takes no network backend, so the pool httpx built (a connection pool, or httpcore's HTTP or SOCKS proxy
    pool, with httpx's TLS settings) gets ``DeadlineBackend`` before it makes its first connection.
    """
    transport = httpx.HTTPTransport(limits=limits, proxy=proxy)
    pool: Any = transport._pool
    pool._network_backend = DeadlineBackend()
    return transport


def environment_mounts(limits: httpx.Limits) -> dict[str, httpx.BaseTransport | None]:
    """The proxies this host's environment names (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, and ``NO_PROXY``
    for what goes straight), as transports of ``new_transport``: what an httpx client finds there by itself, which
    it no longer looks for once it is given a transport of its own. ``SourceUnavailable`` for a proxy this host
    cannot use (a SOCKS proxy without ``httpx[socks]``)."""
    mounts: dict[str, httpx.BaseTransport | None] = {}
    for pattern, url in get_environment_proxies().items():
        try:
            mounts[pattern] = None if url is None else new_transport(limits, httpx.Proxy(url))
        except (ImportError, ValueError) as exc:
            raise SourceUnavailable(f"the proxy for {pattern} in this host's environment cannot be used "
                                    f"({str(exc).splitlines()[0][:160]})") from None
    return mounts


def _limit(timeout: float | None) -> float | None:
    """``timeout`` shortened to what is left of this thread's fetch; raises once the process stops or the deadline
    has passed."""
    if stopping():
        raise FetchStopped
    deadline = getattr(_thread, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlinePassed
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every wait ends by the thread's deadline; reads look at the stop switch every slice."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        give_up = None if timeout is None else time.monotonic() + timeout  # the read timeout's own end
        while True:
            left = _limit(None if give_up is None else give_up - time.monotonic())
            try:
                return self._stream.read(max_bytes, SLICE if left is None else max(min(left, SLICE), 0.001))
            except httpcore.ReadTimeout:
                if give_up is not None and time.monotonic() >= give_up:
                    raise  # the server said nothing for the whole read timeout: httpx's own timeout

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _limit(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, _limit(timeout)))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's standard backend, its streams wrapped in ``DeadlineStream``."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self._backend.connect_tcp(host, port, _limit(timeout), local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self._backend.connect_unix_socket(path, _limit(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        wait(seconds)
