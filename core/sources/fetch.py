"""Fetching one tile over HTTP with httpx: retries, ``Retry-After``, a size cap, a content-type check, a total
deadline, redirects only within the URL's own host, and a request rate shared by every worker of a source.

What becomes of a request, after up to ``tries`` attempts (0.5, 1, 2 … s apart, or what ``Retry-After`` asks,
at most ``MAX_WAIT``), all within ``deadline`` seconds (``TILECLASS_FETCH_DEADLINE``):

- 200 with an image: its bytes. 204 or 404: ``TileAbsent`` (no tile there: an empty tile).
- 429, 5xx, a timeout, a dropped connection or a truncated body: tried again; then ``TileUnreadable`` with the
  status or reason (the tile fails alone).
- A wrong content type, a body over the cap, another 4xx, a redirect to another scheme: ``TileUnreadable`` at once.
  A redirect to another host (or port) than the request's: ``RedirectRefused`` (a ``TileUnreadable``), unless
  the source lists that host (``FetchPolicy.redirect_hosts``, ``enqueue --allow-redirect-host``).
- Connection refused or a name that does not resolve, every time; or 401/403 (a missing or wrong token); or no
  whole answer by the deadline (a server dripping its bytes: ``core.sources.deadline``): ``SourceDown``, a host
  error: the batch goes back to the queue and no tile fails. So does ``FetchStopped`` when the process stops.

Messages name the URL as ``UrlTemplate.shown`` gives it, and hosts as ``host:port`` (``host_of``), never with a
secret; httpx's own request log is quieted for the same reason (it prints full URLs).
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

import httpx

from core.sources import deadline
from core.sources.base import MAX_TILE_BYTES, SourceDown, TileAbsent, TileUnreadable

MAX_WAIT = 30.0
MAX_REDIRECTS = 5
RETRIED_STATUS = {429, 500, 502, 503, 504}
log = logging.getLogger(__name__)


class RedirectRefused(TileUnreadable):
    """The server redirected a tile to a host the source does not allow."""


@dataclass(frozen=True)
class FetchPolicy:
    """How one source is fetched. ``deadline``: seconds for a whole fetch, tries and waits included;
    ``redirect_hosts``: other hosts (``HOST`` or ``HOST:PORT``) its redirects may lead to."""

    tries: int = 4
    backoff: float = 0.5
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    max_bytes: int = MAX_TILE_BYTES
    deadline: float = 60.0
    redirect_hosts: tuple[str, ...] = ()


def new_client(policy: FetchPolicy) -> httpx.Client:
    """A keep-alive connection pool for one process (httpx clients are thread-safe) whose connections keep to the
    fetches' deadlines (``core.sources.deadline``), through the proxies the environment names. httpx's own request
    log is quieted from then on (its INFO lines carry full URLs, tokens included), unless its own level is warnings
    or above already."""
    httpx_log = logging.getLogger("httpx")
    if httpx_log.level < logging.WARNING:  # not set, or set to say more
        httpx_log.setLevel(logging.WARNING)
    timeout = httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout)
    limits = httpx.Limits(max_connections=32)
    return httpx.Client(timeout=timeout, follow_redirects=False, transport=deadline.new_transport(limits),
                        mounts=deadline.environment_mounts(limits), headers={"User-Agent": "tileclass"})


class RateLimiter:
    """At most ``rate`` requests per second for one source: through a per-second counter in Redis (shared by every
    worker on the Redis broker), else in this process. ``rate`` 0: no limit."""

    def __init__(self, rate: float, *, redis: Any = None, key: str = "", clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = deadline.wait) -> None:
        self.rate, self.redis, self.key, self.clock, self.sleep = rate, redis, key, clock, sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        if self.rate <= 0:
            return
        if self.redis is not None:
            try:
                return self._wait_shared()
            except Exception as exc:
                log.warning("rate limit of %s kept in this process only (%s)", self.key, exc.__class__.__name__)
        self._wait_local()

    def _wait_shared(self) -> None:
        while True:
            now = self.clock()
            window = int(now)
            with self.redis.pipeline() as pipe:
                count, _ = pipe.incr(f"{self.key}:{window}").expire(f"{self.key}:{window}", 5).execute()
            if count <= self.rate:
                return
            self.sleep(window + 1 - now)

    def _wait_local(self) -> None:
        with self._lock:
            now = self.clock()
            start = max(now, self._next)
            self._next = start + 1.0 / self.rate
        if start > now:
            self.sleep(start - now)


def fetch(client: httpx.Client, url: str, shown: str, *, policy: FetchPolicy, limiter: RateLimiter,
          sleep: Callable[[float], None] = deadline.wait) -> bytes:
    """The tile at ``url`` (``shown``: the same URL without secrets, for messages); see the module docstring."""
    last = _Retry("no request made")
    with deadline.within(policy.deadline) as ends:
        for attempt in range(policy.tries):
            if attempt:
                pause = min(last.after if last.after is not None else policy.backoff * 2 ** (attempt - 1), MAX_WAIT)
                if time.monotonic() + pause >= ends:
                    raise _too_slow(shown, policy, f"; last try: {last.reason}")
                sleep(pause)
            limiter.wait()
            try:
                return _one_request(client, url, policy)
            except _Retry as retry:
                last = retry
            except deadline.DeadlinePassed:
                raise _too_slow(shown, policy, "") from None
    if last.down:
        raise SourceDown(f"tile server unreachable: {last.reason} ({host_of(urlsplit(shown))}, {policy.tries} "
                         "tries)")
    raise TileUnreadable(f"{last.reason} after {policy.tries} tries")


def host_of(parts: SplitResult) -> str:
    """``host`` or ``host:port`` of a URL, never the user and password a URL may carry before them."""
    netloc = parts.netloc.rpartition("@")[2]
    return netloc.lower()


def _too_slow(shown: str, policy: FetchPolicy, last: str) -> SourceDown:
    return SourceDown(f"tile server too slow: no whole answer within the {policy.deadline:g} s deadline "
                      f"({host_of(urlsplit(shown))}, TILECLASS_FETCH_DEADLINE{last})")


class _Retry(Exception):
    """This attempt failed in a way worth trying again (``after``: the seconds the server asked to wait)."""

    def __init__(self, reason: str, *, down: bool = False, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.down, self.after = reason, down, after


def _one_request(client: httpx.Client, url: str, policy: FetchPolicy) -> bytes:
    origin = urlsplit(url)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            with client.stream("GET", url) as response:
                status = response.status_code
                if status in (301, 302, 303, 307, 308):
                    url = urljoin(url, response.headers.get("location", ""))
                    _check_redirect(origin, urlsplit(url), policy.redirect_hosts)
                    continue
                return _body(response, status, policy)
        except httpx.ConnectError:
            raise _Retry("connection refused or host not found", down=True) from None
        except httpx.TimeoutException:
            raise _Retry("timed out") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            raise _Retry("connection dropped or body truncated") from None
    raise TileUnreadable(f"more than {MAX_REDIRECTS} redirects")


def _check_redirect(origin: SplitResult, target: SplitResult, allowed: tuple[str, ...]) -> None:
    """``TileUnreadable`` unless a redirect from ``origin`` to ``target`` keeps its scheme and its host and port,
    or leads to a host the source allows."""
    if target.scheme != origin.scheme:
        raise TileUnreadable(f"redirected from {origin.scheme} to {target.scheme or 'nothing'}")
    where = _host_and_port(target)
    if where == _host_and_port(origin) or any(_allows(entry, where) for entry in allowed):
        return
    shown = host_of(target) or "nowhere"
    raise RedirectRefused(f"redirected to another host, {shown} (enqueue --allow-redirect-host {shown} follows it)")


def _allows(entry: str, where: tuple[str, int | None]) -> bool:
    """Whether ``HOST`` (any port) or ``HOST:PORT`` names the host and port ``where``."""
    listed = urlsplit(f"//{entry}")
    try:
        port = listed.port
    except ValueError:
        return False
    return listed.hostname == where[0] and (port is None or port == where[1])


def _host_and_port(parts: SplitResult) -> tuple[str, int | None]:
    try:
        port = parts.port
    except ValueError:  # not a number: never the origin's
        return (parts.hostname or "", -1)
    return (parts.hostname or "", port if port is not None else {"http": 80, "https": 443}.get(parts.scheme))


def check_redirect_host(entry: str) -> str:
    """``entry`` as ``FetchPolicy.redirect_hosts`` keeps it (lower case), or ``ValueError`` naming the forms."""
    listed = urlsplit(f"//{entry.strip().lower()}")
    try:
        _ = listed.port
    except ValueError:
        listed = listed._replace(netloc="")
    if not listed.hostname or listed.path or listed.query or "@" in listed.netloc:
        raise ValueError(f"{entry!r} is not a host: give HOST or HOST:PORT, e.g. tiles.example.com or 127.0.0.1:8080")
    return listed.netloc


def _body(response: httpx.Response, status: int, policy: FetchPolicy) -> bytes:
    if status in (204, 404):
        raise TileAbsent(f"no tile at the server ({status})")
    if status in (401, 403):
        raise SourceDown(f"the tile server refused access (HTTP {status}): check the URL's token")
    if status in RETRIED_STATUS:
        raise _Retry(f"HTTP {status}", after=_retry_after(response.headers.get("retry-after", "")))
    if status != 200:
        raise TileUnreadable(f"HTTP {status}")
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not kind.startswith("image/") and kind != "application/octet-stream":
        raise TileUnreadable(f"wrong content type {kind or 'none'!r} (expected an image)")
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > policy.max_bytes:
        raise TileUnreadable(f"tile too large: {declared} bytes > {policy.max_bytes}")
    data = bytearray()
    for piece in response.iter_bytes():
        data += piece
        if len(data) > policy.max_bytes:
            raise TileUnreadable(f"tile too large: more than {policy.max_bytes} bytes")
    if not data:
        raise TileAbsent("no tile at the server (200 with an empty body)")
    return bytes(data)


def _retry_after(value: str) -> float | None:
    """The seconds a 429/503's ``Retry-After`` asks for (a number or an HTTP date), if it does."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
