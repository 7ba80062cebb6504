"""The contract every tile source keeps, like rio-tiler's ``BaseReader``: what a source is, what it yields, what its
reader raises.

A source is one place tiles are (a folder, an archive, a tile server, a raster), a small value that a job records as
JSON and any host turns back into the same source (``core.sources.source_from_record``). Its kind is one module of
``core.sources`` with one subclass of ``TileSource`` and one line in ``core.sources.KINDS``; nothing outside asks
which kind it has:

- the producer lists it with ``tiles(region, after=...)`` (``Chunk``s that a resumed pass starts ``after``) and
  settles a request with ``for_enqueue`` (what a kind adds to the enqueue rules: a tile server needs a region and
  is probed, a raster picks its zoom, a plain folder takes none);
- workers, the HTTP server's imagery and ``dataset export`` read it with ``reader(settings).read(tile)``;
- the CLI shows ``info()``.

Errors::

    TileclassError (core.errors)
    ├── SourceError                a source is unknown, unusable as named, or a path would leave it (one line)
    │   └── SourceUnavailable      ... and a HostError: missing, unreadable or down on this host; a worker puts its
    │       └── SourceDown         batch back and no tile fails. SourceDown: a tile server unreachable, too slow or
    │                              refusing this host's credentials
    └── HostError
    TileProblem                    one tile (the results database keeps its ``reason``)
    ├── TileUnreadable             it cannot be read: it fails
    └── TileAbsent                 the source has nothing there: it is empty
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

from core.errors import HostError, TileclassError
from core.tiles import Tile

if TYPE_CHECKING:
    from core.bbox import BBox
    from core.region import Region
    from core.settings import Settings
    from core.sources.layouts import Layout

Key = tuple[Any, ...]
EXAMPLES_PER_REASON = 5
# A tile larger than this is refused before it is copied into memory, and a gzip tile is inflated to this at most:
# the size of the largest image a worker decodes by default (TILECLASS_WORKER_MAX_PIXELS, 4096²) as RGBA, unencoded.
MAX_TILE_BYTES = 64 << 20


class SourceError(TileclassError):
    """A tile source is unknown or unusable as named (no such folder, not an archive of its kind, an incomplete
    record, a URL without a host), or a tile path would leave its folder."""


class SourceUnavailable(SourceError, HostError):
    """The source is missing, unreadable or down on this host: the host's problem, not its tiles' (a worker puts the
    batch back, ``worker.host_errors``); ``broken`` when no source can be read on this host at all."""


class SourceDown(SourceUnavailable):
    """The tile server cannot be reached, refuses this host's credentials or is too slow: not the tiles' fault."""


class TileProblem(Exception):
    """Something about one tile of a source, with the short ``reason`` the results database keeps."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TileUnreadable(TileProblem):
    """One tile cannot be read: it fails (``failed_tiles``)."""


class TileAbsent(TileProblem):
    """The source has no tile there (a tile server's 404 or 204): an empty tile, neither classified nor failed."""


class TileReader(Protocol):
    """An open source: ``read`` is called from several decoding threads at once."""

    def read(self, tile: Tile) -> bytes:
        """The tile's bytes; ``TileUnreadable`` (it fails), ``TileAbsent`` (it is empty) or ``SourceUnavailable``
        (the host's problem: no tile fails)."""
        ...


@dataclass(frozen=True, slots=True)
class Chunk:
    """Up to ``chunk_size`` tiles of one part of a source (a leaf directory, a column), in listing order."""

    key: Key  # the part's place in the listing order (the resume cursor)
    tiles: list[Tile]
    column: tuple[int, int] | None  # the (z, x) every tile of the part shares, when the source knows it
    last: bool  # the part's final chunk: after it the part is done


@dataclass
class WalkReport:
    """What a listing left out and why, with a few example paths per reason."""

    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    ignored_names: int = 0  # entries whose names do not fit the layout (README, .DS_Store, …)

    def note(self, reason: str, path: str) -> None:
        self.skipped[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_PER_REASON:
            kept.append(path)


@dataclass(frozen=True)
class SourceInfo:
    """What a source says about itself (what the CLI prints): its kind, name and location, and, where the source
    knows them without a listing, its bounds and zooms."""

    kind: str
    name: str
    location: str | None  # a path, or a URL template with its secrets as {env:VAR}
    layout: str | None = None  # a folder's layout name
    bounds: BBox | None = None
    zooms: tuple[int, ...] | None = None


@dataclass(frozen=True)
class SourceOptions:
    """What the user said of a source besides naming it: options that only some kinds take (``takes``)."""

    layout: Layout | None = None  # --layout / --scheme; None: not given (a folder's default)
    subdomains: str = ""
    max_rate: float = 0.0
    redirect_hosts: tuple[str, ...] = ()
    name: str | None = None  # @NAME: the name this host gives it

    def given(self) -> set[str]:
        """Which of the kind-specific options were given."""
        return {name for name, value in (("layout", self.layout), ("subdomains", self.subdomains),
                                         ("max_rate", self.max_rate), ("redirect_hosts", self.redirect_hosts))
                if value}


# Why an option does not apply to a kind that does not take it, in the order they are looked at.
_FOR_URLS = "--subdomains, --max-rate and --allow-redirect-host apply to tile server URLs"
NOT_TAKEN = {"subdomains": _FOR_URLS, "max_rate": _FOR_URLS, "redirect_hosts": _FOR_URLS,
             "layout": "--layout and --scheme apply to folders; a {kind} source addresses its own tiles"}


@dataclass(frozen=True)
class EnqueuePlan:
    """The region a source is enqueued for, after its kind's rules, and what to tell the user about it."""

    region: Region | None
    note: str | None = None


class TileSource(ABC):
    """One kind of tile source (``core.sources.KINDS``); a frozen dataclass whose fields are its record.

    Subclasses set ``kind`` (the record's ``"kind"``) and say how the user names one (``claims``, ``spelled`` or
    ``suffixes``, ``at``), which options they take (``takes``), and how they are listed and read.
    """

    kind: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = ()  # file kinds: the names that say it (".mbtiles"); lower case
    spelled: ClassVar[str] = ""  # other kinds: how SOURCE says it, for the one-line error ("a folder")
    takes: ClassVar[frozenset[str]] = frozenset()  # the SourceOptions it uses (besides name)
    fallback: ClassVar[bool] = False  # a path that no kind claims, and that is not a file, is this kind's
    name: str

    if TYPE_CHECKING:
        @property
        def path(self) -> str | None:
            """Where the producer's host found it: a path, or a URL template (what summaries show)."""

    # -- naming one -------------------------------------------------------------------------------------------
    @classmethod
    def claims(cls, spec: str) -> bool:
        """Whether SOURCE as the user typed it names a source of this kind (by default: its file suffix)."""
        return bool(cls.suffixes) and spec.lower().endswith(cls.suffixes)

    @classmethod
    def from_spec(cls, spec: str, options: SourceOptions, settings: Settings) -> Self:
        """The source SOURCE names, checked now (``SourceError`` in one line); ``options`` the kind takes."""
        raise NotImplementedError(f"a {cls.kind} source cannot be named on the command line")

    @classmethod
    def refuse_options(cls, options: SourceOptions) -> None:
        """``SourceError`` for the first option given that this kind does not take."""
        for option, reason in NOT_TAKEN.items():
            if option in options.given() and option not in cls.takes:
                raise SourceError(reason.format(kind=cls.kind))

    # -- the job's record -------------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        """The source a job recorded (``KeyError``/``TypeError`` for an incomplete record)."""

    @abstractmethod
    def to_record(self) -> dict[str, Any]:
        """The JSON the job keeps: ``{"kind": ..., "name": ..., ...}``."""

    # -- the producer -----------------------------------------------------------------------------------------
    @abstractmethod
    def check_readable(self) -> None:
        """``SourceError`` unless the producer's host can list it again (before a resume)."""

    @abstractmethod
    def tiles(self, region: Region | None, *, after: Key | None = None, report: WalkReport | None = None,
              chunk_size: int = 4096) -> Iterator[Chunk]:
        """The region's tiles in resumable chunks, in an order whose keys grow: a pass resumes ``after`` one."""

    def for_enqueue(self, region: Region | None, *, settings: Settings, probes: int) -> EnqueuePlan:
        """The kind's own enqueue rules: the region to enqueue (``SourceError``/``TileError`` when the kind cannot
        take this one) and what to tell the user. By default the region as given."""
        return EnqueuePlan(region)

    def nothing_found(self, region: Region | None) -> str:
        """The one-line error when the source has no tile in the region."""
        where = f"{self.path or self.name}{' within --zoom/--bbox/--geojson' if region is not None else ''}"
        return f"no tiles found in {where}: nothing enqueued"

    def info(self) -> SourceInfo:
        """What the CLI shows of the source."""
        return SourceInfo(self.kind, self.name, self.path)

    # -- the readers ------------------------------------------------------------------------------------------
    @abstractmethod
    def reader(self, settings: Settings) -> TileReader:
        """This host's reader of the source; ``SourceUnavailable`` when it cannot be read here."""
