"""Imagery reads on threads of their own, a few at a time, so that a slow tile server never starves other routes.

FastAPI runs sync routes on AnyIO's thread pool: 40 threads shared by every route of the process. Imagery reads
wait on a job's source (a tile server may take up to ``TILECLASS_FETCH_DEADLINE`` per tile), and 45 of them once
held all 40 threads: ``/healthz`` went unanswered. So ``/imagery`` runs its reads on ``SLOTS`` threads of its own
(per server process), and a request that finds them all busy for ``WAIT`` seconds is answered 503 with
``Retry-After`` (the map asks again later) instead of queueing behind them.

When the server stops (``close``, from the app's lifespan), reads still waiting on a tile server end within a
fraction of a second (``core.sources.deadline.stopped_by``): the process does not wait for their threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from api.errors import Unavailable
from core.sources.deadline import stopped_by

SLOTS = 8  # a map shows ~20-30 tiles at once: a local source reads them in a few ms each, so 8 keep up with it
WAIT = 5.0  # seconds a request waits for a slot: a map's burst of fast reads passes, even on a busy host
RETRY_AFTER = 2
POLL = 0.05
T = TypeVar("T")


class ImageryGate:
    """At most ``slots`` imagery reads at once, on their own threads; ``Unavailable`` past ``wait`` seconds."""

    def __init__(self, slots: int = SLOTS, wait: float = WAIT) -> None:
        self.slots, self.wait = slots, wait
        self._slots = threading.BoundedSemaphore(slots)
        self._threads = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="imagery")
        self._closing = threading.Event()

    async def run(self, read: Callable[[], T]) -> T:
        """``read()`` on an imagery thread once a slot is free; ``Unavailable`` if none frees up in time."""
        # A threading semaphore polled from the event loop: unlike an asyncio one it is bound to no event loop.
        give_up = time.monotonic() + self.wait
        while not self._slots.acquire(blocking=False):
            if self._closing.is_set() or time.monotonic() >= give_up:
                raise Unavailable(f"every imagery slot ({self.slots}) is busy reading slow sources: try again shortly",
                                  retry_after=RETRY_AFTER)
            await asyncio.sleep(POLL)
        try:
            if self._closing.is_set():
                raise Unavailable("the server is stopping", retry_after=RETRY_AFTER)
            return await asyncio.wrap_future(self._threads.submit(self._stoppable, read))
        finally:
            self._slots.release()

    def close(self) -> None:
        """End the reads in flight (their fetches stop within a slice) and refuse new ones."""
        self._closing.set()
        self._threads.shutdown(wait=False, cancel_futures=True)

    def _stoppable(self, read: Callable[[], T]) -> T:
        with stopped_by(self._closing):
            return read()
