"""Wrong tokens, throttled per client address, so that the API token cannot be guessed at the server's speed.

A client address (an IPv6 client by its /64, which one host usually holds whole) may get the token wrong
``free`` times; each further wrong try locks it out for twice as long as the last (1 s, 2 s, 4 s … up to
``max_delay``), answered with 429 and ``Retry-After``. While locked out every try is refused, the right token too:
else a guesser would learn which guess was right from the one answer that is not 429. The lockout never lasts
longer than ``max_delay``, an address is forgotten ``window`` seconds after its last wrong try or at once after a
right one, and at most ``max_clients`` addresses are kept (the longest quiet forgotten first), so neither a
guesser nor a flood of addresses can lock the real user out for good or grow the server's memory.

Each server process keeps its own count (``serve --workers N`` gives a guesser N times the tries).
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Failures:
    count: int
    last: float
    locked_until: float


class Throttle:
    """Counts wrong tokens per client address and says how long an address must wait before its next try."""

    def __init__(self, *, free: int = 10, window: float = 900, max_delay: float = 60, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free, self.window, self.max_delay, self.max_clients = free, window, max_delay, max_clients
        self.clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, client: str | None) -> int:
        """Whole seconds before ``client`` may try a token again; 0 when it may now."""
        now = self.clock()
        with self._lock:
            failures = self._current(address_key(client), now)
            return math.ceil(failures.locked_until - now) if failures and failures.locked_until > now else 0

    def failed(self, client: str | None) -> None:
        """``client`` presented a wrong token."""
        key, now = address_key(client), self.clock()
        with self._lock:
            failures = self._current(key, now) or _Failures(0, now, now)
            failures.count, failures.last = failures.count + 1, now
            beyond = failures.count - self.free
            if beyond > 0:
                failures.locked_until = now + min(2.0 ** min(beyond - 1, 30), self.max_delay)
            self._failures[key] = failures
            self._failures.move_to_end(key)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)

    def succeeded(self, client: str | None) -> None:
        """``client`` presented the right token: its wrong tries are forgotten."""
        with self._lock:
            self._failures.pop(address_key(client), None)

    def _current(self, key: str, now: float) -> _Failures | None:
        failures = self._failures.get(key)
        if failures is not None and now - failures.last > self.window and now >= failures.locked_until:
            del self._failures[key]
            return None
        return failures


def address_key(client: str | None) -> str:
    """The key an address is counted under: an IPv6 address by its /64, anything else as it is."""
    if client is None:
        return "?"
    try:
        address = ipaddress.ip_address(client)
    except ValueError:  # not an IP address (a test client's name, a Unix socket)
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
