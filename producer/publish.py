"""Publish classify batches over one reused broker connection, keeping at most ``max_queued`` of them waiting.

Asking the broker for the queue's length costs a round trip (a new connection), so it is not asked before every
batch: the publisher keeps an upper bound — the last count it read plus the batches it sent since — and asks
again only after ``max_queued // 2`` sends or when the bound reaches ``max_queued``. Workers only ever shorten the
queue, so the bound never underestimates and this producer never pushes the queue past ``max_queued``. When the
queue is full it polls every ``poll_interval`` seconds until a worker makes room.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from celery import Celery

from core.celery_app import queued_messages
from core.messages import CLASSIFY_QUEUE, CLASSIFY_TASK, SENT_AT_HEADER, ClassifyBatch

POLL_INTERVAL = 0.25


class Publisher:
    """Sends batches by task name; ``before_wait`` runs before it blocks (the producer records its progress)."""

    def __init__(self, app: Celery, producer: Any, *, max_queued: int, before_wait: Callable[[], None],
                 on_wait: Callable[[int], None] | None = None, stop: threading.Event | None = None,
                 poll_interval: float = POLL_INTERVAL) -> None:
        self.app, self.producer, self.max_queued = app, producer, max_queued
        self.before_wait, self.on_wait, self.stop, self.poll_interval = before_wait, on_wait, stop, poll_interval
        self.recheck_every = max(1, max_queued // 2)
        self._known: int | None = None  # the queue's length when last asked
        self._since = 0  # batches sent since then
        self.waits = 0  # how many times the queue was full

    def check(self) -> None:
        """Ask the broker for the queue's length now (raises kombu's OperationalError when it is unreachable)."""
        if self._known is None:
            self._known = self._count()

    def send(self, batch: ClassifyBatch) -> None:
        self.check()
        assert self._known is not None
        if self._known + self._since >= self.max_queued:
            self._wait_for_room()
        # A short kwargsrepr: Celery would otherwise build a repr of every tile row for logs (a fifth of the time).
        summary = f"{{'batch': <job {batch.job_id} seq {batch.seq}: {len(batch.tiles)} tiles>}}"
        self.app.send_task(CLASSIFY_TASK, kwargs={"batch": batch.to_message()}, queue=CLASSIFY_QUEUE,
                           producer=self.producer, argsrepr="()", kwargsrepr=summary,
                           headers={SENT_AT_HEADER: round(time.time(), 3)})
        self._since += 1
        if self._since >= self.recheck_every:
            self._known, self._since = self._count(), 0

    def _count(self) -> int:
        return queued_messages(CLASSIFY_QUEUE, self.app)

    def _wait_for_room(self) -> None:
        self.waits += 1
        self.before_wait()
        while True:
            count = self._count()
            if count < self.max_queued:
                self._known, self._since = count, 0
                return
            if self.on_wait is not None:
                self.on_wait(count)
            deadline = time.monotonic() + self.poll_interval
            while time.monotonic() < deadline:
                if self.stop is not None and self.stop.is_set():
                    raise KeyboardInterrupt
                time.sleep(min(0.05, self.poll_interval))
