"""Batches that killed their worker: run markers kept in the Redis broker, so a poison tile cannot loop forever.

Delivery is at least once: a message whose worker process died (SIGKILL, the OOM killer, a crash inside a
decoder) stays unacknowledged and Redis hands it out again after the visibility timeout. A tile that kills the
process every time would so come back forever and hold a worker slot hostage. A process cannot catch its own
death, so every run of a batch leaves markers in Redis that only a run which gets back to Python removes::

    tileclass:runs:<job>:<seq>          ids of the batch's runs that have started and not ended
    tileclass:alive:<job>:<seq>:<run>   exists while run <run>'s process lives: a heartbeat thread renews its TTL
    tileclass:tile:<job>:<seq>          in isolation mode: run id -> the one tile that run is classifying now
    tileclass:poison:<job>:<seq>        tiles that were being classified alone when their run's worker died
    tileclass:blind:<job>:<seq>         runs that died before reaching any tile in isolation (model loading, say)

A run that finds an earlier run unfinished classifies in *isolation mode*: one tile at a time, naming each tile
under its own run id while it runs. The earlier run is either dead (its alive key lapsed: no heartbeat renewed it)
or still running elsewhere, having outlived the visibility timeout. Only a dead run's tile is poison: the run that
claims the dead run (a script Redis runs atomically, so exactly one run does) records its tile as failed,
or counts a blind death when it had none. A live run's tile is just being classified slowly and is never failed.
A batch with k poison tiles is settled after at most k + 1 deaths; runs that die without reaching a tile are
bounded by ``TILECLASS_WORKER_MAX_RETRIES``, after which the whole batch fails.

A frozen process (SIGSTOP, a host suspended) whose heartbeat lapses is indistinguishable from a dead one; if it
was isolated, its tile is failed as poison. The heartbeat lasts a third of the visibility timeout, at most 30 s,
so a short network blip does not lapse it.

Only the Redis broker has these markers. The embedded filesystem broker removes a message when a worker takes
it, so a crash loses that batch instead of repeating it (``tileclass resume`` re-enqueues it). A marker problem
(Redis unreachable for a moment) never fails a batch: the run goes on without markers and logs a warning.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from core.broker import is_redis, redis_client
from core.settings import Settings

MARKER_TTL = 7 * 24 * 3600  # longer than any sane visibility timeout times a few redeliveries
log = logging.getLogger(__name__)
# KEYS: runs, tile, poison, blind; ARGV: the dead run's id, the markers' TTL
_CLAIM = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local suspect = redis.call('HGET', KEYS[2], ARGV[1])
if suspect then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('SADD', KEYS[3], suspect)
  redis.call('EXPIRE', KEYS[3], ARGV[2])
else
  redis.call('INCR', KEYS[4])
  redis.call('EXPIRE', KEYS[4], ARGV[2])
end
return 1
"""
_clients: dict[tuple[int, str], Any] = {}


def alive_ttl(visibility_timeout: int) -> int:
    """Seconds a run's alive key lasts without a heartbeat: well inside the visibility timeout, at most 30."""
    return max(3, min(30, visibility_timeout // 3))


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
    """The markers of one run of one batch (no-ops when the broker is not Redis); see the module docstring.

    One object is one run: ``begin()`` once, then ``classifying``/``classified`` per isolated tile, then ``ended()``
    or ``settled()``, which also stop its heartbeat.
    """

    def __init__(self, settings: Settings, *, job_id: int, seq: int) -> None:
        self.client = _client(settings)
        self.limit = settings.worker.max_retries
        self.run_id = uuid.uuid4().hex
        self.stem = f"{job_id}:{seq}"
        self.runs, self.tile, self.poison, self.blind = (f"tileclass:{kind}:{self.stem}"
                                                         for kind in ("runs", "tile", "poison", "blind"))
        self.alive = self.alive_key(self.run_id)
        self.alive_ttl = alive_ttl(settings.visibility_timeout)
        self.heartbeat: Heartbeat | None = None

    def alive_key(self, run_id: str) -> str:
        return f"tileclass:alive:{self.stem}:{run_id}"

    def begin(self) -> RunMode:
        """Register this run, claim the earlier runs that died, and decide this run's mode."""
        if self.client is None:
            return RunMode()
        try:
            with self.client.pipeline() as pipe:
                *_, members = (pipe.set(self.alive, 1, ex=self.alive_ttl).sadd(self.runs, self.run_id)
                               .expire(self.runs, MARKER_TTL).smembers(self.runs).execute())
            self.heartbeat = Heartbeat(self.client, self.alive, self.alive_ttl)
            others = [m.decode() for m in members if m.decode() != self.run_id]
            dead = [run for run in others if not self.client.exists(self.alive_key(run))]
            for run in dead:
                self._claim(run)
            blind = int(self.client.get(self.blind) or 0)
            poison = frozenset(p.decode() for p in self.client.smembers(self.poison))
        except RedisError as exc:  # the markers are a safeguard, never a reason to fail a batch
            self._warn("read", exc)
            return RunMode()
        if not others and not poison and not blind:
            return RunMode()
        log.warning("%s: an earlier run of this batch did not finish (%d dead, %d still running, %d poison tile(s)); "
                    "classifying its tiles one at a time", self.stem, len(dead), len(others) - len(dead), len(poison))
        return RunMode(isolate=True, poison=poison, give_up=blind if blind > self.limit else None)

    def _claim(self, run: str) -> None:
        """Take a dead run's death into account, unless another run claimed it first.

        One script, so that Redis runs it atomically: a run that loses the claim and reads the poison tiles next
        already sees the tile the winner recorded.
        """
        assert self.client is not None
        self.client.register_script(_CLAIM)(keys=[self.runs, self.tile, self.poison, self.blind],
                                            args=[run, MARKER_TTL])

    def classifying(self, path: str) -> None:
        """Isolation mode: ``path`` is about to be read, decoded and classified on its own."""
        self._safely("write", lambda c: c.pipeline().hset(self.tile, self.run_id, path)
                     .expire(self.tile, MARKER_TTL).execute())

    def classified(self) -> None:
        """Isolation mode: the tile named last is done; a death from now on is not its fault."""
        self._safely("write", lambda c: c.hdel(self.tile, self.run_id))

    def ended(self) -> None:
        """This run got back to Python (done, or raised to be retried): it is no longer unfinished."""
        self._stop()
        self._safely("write", lambda c: c.pipeline().srem(self.runs, self.run_id).hdel(self.tile, self.run_id)
                     .delete(self.alive).execute())

    def settled(self) -> None:
        """The batch's outcome is recorded: forget every run's markers, its poison tiles and blind deaths too."""
        self._stop()
        self._safely("write", lambda c: c.delete(self.runs, self.tile, self.poison, self.blind, self.alive))

    def _stop(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()

    def _safely(self, what: str, action: Callable[[Any], Any]) -> None:
        if self.client is None:
            return
        try:
            action(self.client)
        except RedisError as exc:  # see begin()
            self._warn(what, exc)

    def _warn(self, what: str, exc: BaseException) -> None:
        log.warning("cannot %s the run markers in Redis (%s: %s); going on without them", what,
                    exc.__class__.__name__, str(exc)[:200])


class Heartbeat:
    """A daemon thread renewing one run's alive key every third of its TTL, for as long as the process lives."""

    def __init__(self, client: Any, key: str, ttl: int) -> None:
        self.client, self.key, self.ttl = client, key, ttl
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat {key}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        warned = False
        while not self._stopped.wait(self.ttl / 3):
            try:
                self.client.set(self.key, 1, ex=self.ttl)
                warned = False
            except RedisError as exc:  # keep trying: the key lapses only if Redis stays away for a whole TTL
                if not warned:
                    log.warning("cannot renew %s in Redis (%s); retrying", self.key, exc.__class__.__name__)
                warned = True

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)


def _client(settings: Settings) -> Any:
    """This process's Redis client for the broker's database, or None when the broker is not Redis."""
    if not is_redis(settings):
        return None
    key = (os.getpid(), settings.broker_url)
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = redis_client(settings, timeout=10, health_check_interval=30)
    return client
