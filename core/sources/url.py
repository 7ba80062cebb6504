"""Tile servers: an XYZ/TMS URL template (``core.sources.url_template``) read by the workers over HTTP.

A server cannot be listed, so the producer enqueues the region's tile cover: every tile of each ``--zoom`` that
meets the bbox or polygon, one chunk per column keyed ``(z, x)``. A region is required. ``probe`` fetches a few
tiles spread over the region first, with the workers' retries, so a wrong URL stops the enqueue in one line.

Each worker process keeps one httpx connection pool per source (``reader``) and fetches in its decoding threads,
ahead of the device. With ``TILECLASS_TILE_CACHE`` every fetched tile is kept on disk under the source's name, so a
rerun downloads nothing again. The source's ``max_rate`` (requests per second, ``enqueue --max-rate``) is shared by
all workers through the Redis broker. A host may name its own template for the source in ``TILECLASS_SOURCES``.

Each fetch ends within ``TILECLASS_FETCH_DEADLINE`` seconds; ``{env:VAR}`` reads only what ``TILECLASS_SOURCE_ENV``
lists on the host resolving it; redirects are followed within the template's host, or to the hosts the source lists
(``redirect_hosts``: ``enqueue --allow-redirect-host``, recorded with the job).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from core.broker import redis_client
from core.errors import TileError
from core.models.names import NAME_PATTERN
from core.region import Region
from core.settings import Settings
from core.sources.base import (
    Chunk,
    EnqueuePlan,
    Key,
    SourceDown,
    SourceError,
    SourceOptions,
    SourceUnavailable,
    TileAbsent,
    TileSource,
    TileUnreadable,
    WalkReport,
)
from core.sources.cover import cover
from core.sources.fetch import FetchPolicy, RateLimiter, RedirectRefused, check_redirect_host, fetch, new_client
from core.sources.roots import is_url
from core.sources.url_template import UrlTemplate
from core.tiles import Tile

_readers: dict[tuple[int, UrlSource, str, float], UrlReader] = {}
_readers_lock = threading.Lock()


@dataclass(frozen=True)
class UrlSource(TileSource):
    name: str
    template: str
    subdomains: str = ""
    max_rate: float = 0.0
    redirect_hosts: tuple[str, ...] = ()  # other hosts its redirects may lead to: HOST or HOST:PORT
    kind: ClassVar[str] = "url"
    spelled: ClassVar[str] = "an http(s):// URL template"
    takes: ClassVar[frozenset[str]] = frozenset({"subdomains", "max_rate", "redirect_hosts"})

    @classmethod
    def claims(cls, spec: str) -> bool:
        return is_url(spec)

    @classmethod
    def from_spec(cls, spec: str, options: SourceOptions, settings: Settings) -> UrlSource:
        source = cls.at(spec, settings=settings, subdomains=options.subdomains, max_rate=options.max_rate,
                        name=options.name, redirect_hosts=options.redirect_hosts)
        cls.refuse_options(options)
        return source

    @classmethod
    def at(cls, template: str, *, settings: Settings, subdomains: str = "", max_rate: float = 0.0,
           name: str | None = None, redirect_hosts: tuple[str, ...] = ()) -> UrlSource:
        """The source for a URL template the user gave, checked (no request is made); ``{env:VAR}`` must be in
        this host's ``TILECLASS_SOURCE_ENV``."""
        UrlTemplate.parse(template, subdomains).check_env(settings.sources.env)
        if max_rate < 0:
            raise SourceError(f"--max-rate must be 0 (no limit) or more requests per second (got {max_rate})")
        try:
            hosts = tuple(dict.fromkeys(check_redirect_host(host) for host in redirect_hosts))
        except ValueError as exc:
            raise SourceError(f"--allow-redirect-host {exc}") from None
        if name is None:
            named = [known for known, value in settings.sources.named.items() if value == template]
            digest = hashlib.sha1(template.encode()).hexdigest()[:8]
            host = "".join(ch if ch.isalnum() or ch in "-." else "-" for ch in urlsplit(template).hostname or "")
            name = named[0] if named else f"{host.strip('-.') or 'tiles'}"[:55] + f"-{digest}"
        return cls(name, template, subdomains, float(max_rate), hosts)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> UrlSource:
        hosts = record.get("redirect_hosts") or []
        return cls(str(record["name"]), str(record["template"]), str(record.get("subdomains") or ""),
                   float(record.get("max_rate") or 0.0), tuple(str(host) for host in hosts))

    def to_record(self) -> dict[str, Any]:
        record = {"kind": self.kind, "name": self.name, "template": self.template, "subdomains": self.subdomains,
                  "max_rate": self.max_rate}
        # Only when set: the record of a source without them stays what it was, so its unfinished jobs still match.
        return record | {"redirect_hosts": list(self.redirect_hosts)} if self.redirect_hosts else record

    @property
    def path(self) -> str:
        """What summaries show as the source's location: the template, secrets still ``{env:VAR}``."""
        return self.template

    def check_readable(self) -> None:
        UrlTemplate.parse(self.template, self.subdomains)

    def tiles(self, region: Region | None, *, after: Key | None = None, report: WalkReport | None = None,
              chunk_size: int = 4096) -> Iterator[Chunk]:
        """The region's tile cover, one column at a time (a server cannot be listed)."""
        if region is None or region.zooms is None or region.columns(min(region.zooms)) is None:
            raise SourceError("a tile server cannot be listed: give --zoom and --bbox or --geojson")
        return cover(region, after=after, chunk_size=chunk_size)

    def for_enqueue(self, region: Region | None, *, settings: Settings, probes: int) -> EnqueuePlan:
        """A server cannot be listed: the region needs zooms and an extent; ``probes`` tiles are fetched first."""
        if region is None or region.zooms is None or region.extent is None:
            raise TileError("a tile server cannot be listed: give --zoom and --bbox or --geojson")
        if probes:
            self.probe(region, probes, settings)
        return EnqueuePlan(region)

    def local_template(self, settings: Settings) -> UrlTemplate:
        """This host's template: its own for this name in ``TILECLASS_SOURCES``, else the recorded one."""
        configured = settings.sources.named.get(self.name)
        return UrlTemplate.parse(configured if configured and is_url(configured) else self.template, self.subdomains)

    def reader(self, settings: Settings) -> UrlReader:
        """This process's reader of the source; ``SourceUnavailable`` when this host cannot use it (a secret unset,
        or not in its ``TILECLASS_SOURCE_ENV``)."""
        template = self.local_template(settings)
        try:
            template.check_env(settings.sources.env)
        except SourceError as exc:
            raise SourceUnavailable(str(exc)) from None
        missing = template.missing_env()
        if missing:
            raise SourceUnavailable(f"tile source {self.name!r} needs {', '.join(missing)} set in the environment of "
                              "this host (its URL uses {env:…})")
        # The whole source (its rate, the hosts its redirects may go to) and this host's template and deadline.
        key = (os.getpid(), self, template.text, settings.sources.fetch_deadline)
        with _readers_lock:
            if key not in _readers:
                _readers[key] = UrlReader(self, template, settings)
            return _readers[key]

    def probe(self, region: Region, count: int, settings: Settings) -> int:
        """Fetch ``count`` tiles spread over the region; ``SourceError`` if the server is down or has none of them.
        Returns how many answered with a tile."""
        reader = self.reader(settings)
        answered = absent = probed = 0
        for tile in spread(region, count):
            probed += 1
            try:
                reader.fetch(tile)
                answered += 1
            except TileAbsent:
                absent += 1
            except RedirectRefused as exc:  # every tile would be: say so before anything is enqueued
                raise SourceError(f"{exc.reason}: nothing enqueued") from None
            except TileUnreadable:  # one tile's problem: the workers will fail it alone
                pass
            except SourceDown as exc:
                raise SourceError(f"{exc.reason}: nothing enqueued") from None
        if absent and absent == probed:
            shown = reader.template.shown(*next(spread(region, 1)).xyz())
            raise SourceError(f"every probed tile ({absent}) answered 404/204, e.g. {shown}: check the URL template "
                              "and the region; nothing enqueued")
        return answered


def spread(region: Region, count: int) -> Iterator[Tile]:
    """Up to ``count`` tiles of the region spread over its zooms and columns: the middle row of evenly spaced
    columns."""
    zooms = sorted(region.zooms or ())
    for index in range(count):
        zoom = zooms[index % len(zooms)]
        low, high = region.columns(zoom) or (0, 0)
        x = low + (high - low) * (2 * index + 1) // (2 * count)
        rows = region.rows(zoom, x) or ()
        if rows:
            first, last = rows[len(rows) // 2]
            yield Tile(zoom, x, (first + last) // 2)


class UrlReader:
    """Fetches one source's tiles for one process: a connection pool, the shared rate limit, the disk cache."""

    def __init__(self, source: UrlSource, template: UrlTemplate, settings: Settings) -> None:
        if not NAME_PATTERN.match(source.name):  # the name becomes a folder of the cache: never a path
            raise SourceError(f"tile source name {source.name!r} is not a plain name (letters, digits, '.', '_', "
                              "'-')")
        self.source, self.template = source, template
        self.secrets = template.secrets(settings.sources.env)  # the only values of the environment a URL can carry
        self.policy = FetchPolicy(deadline=settings.sources.fetch_deadline, redirect_hosts=source.redirect_hosts)
        self.client = new_client(self.policy)
        self.limiter = RateLimiter(source.max_rate, redis=redis_client(settings, timeout=5),
                                   key=f"tileclass:rate:{source.name}")
        self.cache = settings.sources.cache / source.name if settings.sources.cache is not None else None
        # Once the server is found down, the process's other requests to it fail at once for a while instead of
        # each waiting through its own retries (the job is paused on this worker meanwhile anyway).
        self.down_for = min(settings.worker.host_cooldown, 30.0)
        self._down: tuple[float, SourceDown] | None = None

    def read(self, tile: Tile) -> bytes:
        """The tile's bytes, from the cache or the server (see ``core.sources.fetch`` for what fails how)."""
        if tile.z is None or tile.x is None or tile.y is None:
            raise TileUnreadable("a tile of a tile server needs coordinates")
        cached = self._cache_file(tile)
        if cached is not None and cached.is_file():
            return cached.read_bytes()
        data = self.fetch(tile)
        if cached is not None:
            _store(cached, data)
        return data

    def fetch(self, tile: Tile) -> bytes:
        down = self._down
        if down is not None and time.monotonic() < down[0]:
            raise down[1]
        z, x, y = tile.xyz()
        try:
            return fetch(self.client, self.template.url(z, x, y, self.secrets), self.template.shown(z, x, y),
                         policy=self.policy, limiter=self.limiter)
        except SourceDown as exc:
            self._down = (time.monotonic() + self.down_for, exc)
            raise

    def _cache_file(self, tile: Tile) -> Path | None:
        return None if self.cache is None else self.cache / str(tile.z) / str(tile.x) / f"{tile.y}.tile"


def _store(path: Path, data: bytes) -> None:
    """Write a cache file whole or not at all (a temporary file renamed into place); a full disk only loses it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, prefix=".part-") as handle:
            handle.write(data)
    except OSError:
        return
    try:
        os.replace(handle.name, path)
    except OSError:
        Path(handle.name).unlink(missing_ok=True)


