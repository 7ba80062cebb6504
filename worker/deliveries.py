"""Batches that killed their worker: run markers kept in the Redis broker, so a poison tile cannot loop forever.

Delivery is at least once: a message whose worker process died (SIGKILL, the OOM killer, a crash inside a
decoder) stays unacknowledged and Redis hands it out again after the visibility timeout. A tile that kills the
process every time would so come back forever and hold a worker slot hostage. A process cannot catch its own
death, so every run of a batch leaves markers in Redis that only a run which gets back to Python removes::

    tileclass:runs:<job>:<seq>     runs of the batch that have started and not ended (INCR at the start)
    tileclass:tile:<job>:<seq>     in isolation mode: the one tile being classified right now
    tileclass:poison:<job>:<seq>   tiles that were being classified alone when a worker died
    tileclass:blind:<job>:<seq>    isolated runs that died before reaching any tile (model loading, say)

A run that finds an earlier run unfinished — its worker died, or it is still running elsewhere after outliving
the visibility timeout — classifies in *isolation mode*: one tile at a time, naming each tile in the tile marker
while it runs. If that worker dies too, the next run finds the tile marker, records that tile as failed and
classifies the others. A batch with k poison tiles is settled after at most k + 1 deaths; runs that die without
reaching a tile are bounded by ``TILECLASS_WORKER_MAX_RETRIES``, after which the whole batch fails.

Only the Redis broker has these markers. The embedded filesystem broker removes a message when a worker takes
it, so a crash loses that batch instead of repeating it (``tileclass resume`` re-enqueues it). A marker problem
(Redis unreachable for a moment) never fails a batch: the run goes on without markers and logs a warning.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from core.settings import Settings

MARKER_TTL = 7 * 24 * 3600  # longer than any sane visibility timeout times a few redeliveries
log = logging.getLogger(__name__)
_clients: dict[tuple[int, str], Any] = {}


@dataclass(frozen=True)
class RunMode:
    """How this run of a batch must go.

    Attributes:
        isolate: classify one tile at a time, naming each in the tile marker (an earlier run did not finish).
        poison: paths of tiles that were being classified alone when a worker died: fail them, do not retry.
        give_up: the batch's worker died this many times before reaching any tile: fail the whole batch.
    """

    isolate: bool = False
    poison: frozenset[str] = field(default_factory=frozenset)
    give_up: int | None = None


class RunMarkers:
    """The markers of one batch run (no-ops when the broker is not Redis); see the module docstring."""

    def __init__(self, settings: Settings, *, job_id: int, seq: int) -> None:
        self.client = _client(settings)
        self.limit = settings.worker_max_retries
        stem = f"{job_id}:{seq}"
        self.runs, self.tile, self.poison, self.blind = (f"tileclass:{kind}:{stem}"
                                                         for kind in ("runs", "tile", "poison", "blind"))

    def begin(self) -> RunMode:
        """Count this run and decide its mode from what earlier runs left behind."""
        if self.client is None:
            return RunMode()
        try:
            with self.client.pipeline() as pipe:
                started, _ = pipe.incr(self.runs).expire(self.runs, MARKER_TTL).execute()
            if started <= 1:
                return RunMode()
            suspect = self.client.getdel(self.tile)
            if suspect is not None:
                with self.client.pipeline() as pipe:
                    pipe.sadd(self.poison, suspect).expire(self.poison, MARKER_TTL).execute()
                blind = int(self.client.get(self.blind) or 0)
            else:
                with self.client.pipeline() as pipe:
                    blind, _ = pipe.incr(self.blind).expire(self.blind, MARKER_TTL).execute()
            poison = frozenset(p.decode() for p in self.client.smembers(self.poison))
        except RedisError as exc:  # the markers are a safeguard, never a reason to fail a batch
            self._warn("read", exc)
            return RunMode()
        log.warning("%s: an earlier run of this batch did not finish (%d runs, %d poison tile(s)); classifying "
                    "its tiles one at a time", self.runs.removeprefix("tileclass:runs:"), started, len(poison))
        return RunMode(isolate=True, poison=poison, give_up=blind if blind > self.limit else None)

    def classifying(self, path: str) -> None:
        """Isolation mode: ``path`` is about to be read, decoded and classified on its own."""
        self._safely("write", lambda c: c.set(self.tile, path, ex=MARKER_TTL))

    def classified(self) -> None:
        """Isolation mode: the tile named last is done; a death from now on is not its fault."""
        self._safely("write", lambda c: c.delete(self.tile))

    def ended(self) -> None:
        """This run got back to Python (done, or raised to be retried): it is no longer unfinished."""
        self._safely("write", lambda c: c.delete(self.runs, self.tile))

    def settled(self) -> None:
        """The batch's outcome is recorded: forget its poison tiles and blind deaths too."""
        self._safely("write", lambda c: c.delete(self.runs, self.tile, self.poison, self.blind))

    def _safely(self, what: str, action: Any) -> None:
        if self.client is None:
            return
        try:
            action(self.client)
        except RedisError as exc:  # see begin()
            self._warn(what, exc)

    def _warn(self, what: str, exc: BaseException) -> None:
        log.warning("cannot %s the run markers in Redis (%s: %s); going on without them", what,
                    exc.__class__.__name__, str(exc)[:200])


def _client(settings: Settings) -> Any:
    """This process's Redis client for the broker's database, or None when the broker is not Redis."""
    url = settings.broker_url
    if not url.startswith(("redis://", "rediss://")):
        return None
    key = (os.getpid(), url)
    client = _clients.get(key)
    if client is None:
        import redis

        client = _clients[key] = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10,
                                                      health_check_interval=30)
    return client
