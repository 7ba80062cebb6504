"""The tile source contract (``core.sources.base``): a new kind is one module and one line in ``KINDS``.

``MemorySource`` below is such a kind, tiles held in this process's memory, defined here and registered with one line;
no other module knows it. It is enqueued by the real ``tileclass enqueue``, its batches classified by the worker's
batch function (``worker.batches.run_batch``) and its imagery served by the HTTP server's ``/imagery``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import select

from core.errors import HostError
from core.region import Region
from core.settings import Settings
from core.sources import KINDS, source_from_record
from core.sources.base import (
    Chunk,
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
from core.tiles import Tile
from tests.conftest import REPO_ROOT

STORE: dict[str, dict[tuple[int, int, int], bytes]] = {}  # the memory the kind's tiles live in: name -> tiles


@dataclass(frozen=True)
class MemorySource(TileSource):
    """Tiles in ``STORE`` under the source's name; SOURCE is ``memory://NAME``."""

    name: str
    kind: ClassVar[str] = "memory"
    spelled: ClassVar[str] = "memory://NAME"

    @property
    def path(self) -> str:
        return f"memory://{self.name}"

    @classmethod
    def claims(cls, spec: str) -> bool:
        return spec.startswith("memory://")

    @classmethod
    def from_spec(cls, spec: str, options: SourceOptions, settings: Settings) -> MemorySource:
        cls.refuse_options(options)
        source = cls(options.name or spec.removeprefix("memory://"))
        source.check_readable()
        return source

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> MemorySource:
        return cls(str(record["name"]))

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}

    def check_readable(self) -> None:
        if self.name not in STORE:
            raise SourceUnavailable(f"no memory source {self.name!r} in this process")

    def tiles(self, region: Region | None, *, after: Key | None = None, report: WalkReport | None = None,
              chunk_size: int = 4096) -> Iterator[Chunk]:
        self.check_readable()
        keys = sorted(key for key in STORE[self.name] if region is None or region.contains(*key))
        keys = [key for key in keys if after is None or key > after]
        for start in range(0, len(keys), chunk_size):
            part = keys[start : start + chunk_size]
            yield Chunk(key=part[-1], tiles=[Tile(*key) for key in part], column=None, last=True)

    def reader(self, settings: Settings) -> MemoryReader:
        self.check_readable()
        return MemoryReader(STORE[self.name])


@dataclass(frozen=True)
class MemoryReader:
    tiles: dict[tuple[int, int, int], bytes]

    def read(self, tile: Tile) -> bytes:
        data = self.tiles.get(tile.xyz())
        if data is None:
            raise TileAbsent("not in memory")
        return data


ZOOM, X0, Y0 = 17, 70000, 42000
TILES = [(ZOOM, X0 + dx, Y0 + dy) for dx in range(3) for dy in range(2)]


@pytest.fixture
def memory_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[tuple[int, int, int], bytes]]:
    from tests.worker.support import eurosat_files

    monkeypatch.setitem(KINDS, "memory", f"{__name__}:MemorySource")  # the one registry line
    STORE["city"] = {key: path.read_bytes() for key, path in zip(TILES, eurosat_files(len(TILES)), strict=True)}
    yield STORE["city"]
    STORE.clear()


@pytest.fixture
def deployment(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, str]]:
    """A CPU worker's settings on SQLite and the embedded broker, and a registered tiny model."""
    from core.db import session_scope
    from core.models.registry import register_checkpoint
    from core.settings import get_settings
    from tests.worker.support import tiny_checkpoint
    from worker import runtime

    for name, value in {"DATABASE_URL": sqlite_url, "BROKER_URL": "filesystem://", "DATA_DIR": str(tmp_path / "state"),
                        "DEVICE": "cpu", "WORKER_COMPILE": "false", "WORKER_THREADS": "1", "WORKER_BATCH_SIZE": "4",
                        "MODEL_DIR": str(tmp_path / "models")}.items():
        monkeypatch.setenv(f"TILECLASS_{name}", value)
    get_settings.cache_clear()
    runtime.reset()
    with session_scope() as session:
        model = register_checkpoint(session, checkpoint=tiny_checkpoint(tmp_path / "trained"),
                                    settings=get_settings()).hash
    yield get_settings(), model
    runtime.reset()


def test_a_new_kind_is_one_module_and_one_registry_line(memory_kind: dict, deployment: tuple[Settings, str]) -> None:
    from core.celery_app import connected_app
    from core.db import session_scope
    from core.messages import ClassifyBatch
    from core.schema import EmptyTile, TileResult
    from tests.api.conftest import client_for
    from tests.producer.conftest import cli, consume
    from worker.batches import run_batch

    settings, model = deployment
    del memory_kind[TILES[-1]]  # listed by no one: a tile the region asks for that the source lacks
    enqueued = cli("enqueue", "memory://city", "--model", model, "--batch-size", "4", "--json")
    assert enqueued.exit_code == 0, enqueued.output
    summary = json.loads(enqueued.stdout)
    assert (summary["source"], summary["enqueued"], summary["batches"]) == ({"kind": "memory", "name": "city"}, 5, 2)
    messages = consume(connected_app(settings))
    assert sorted(tile[:3] for message in messages for tile in message["tiles"]) == [list(t) for t in TILES[:-1]]
    for message in messages:  # the worker's batch function, reading through the kind's reader
        assert run_batch(ClassifyBatch.from_message(message), settings)["failed"] == 0
    with session_scope() as session:
        classified = {(row.z, row.x, row.y) for row in session.scalars(select(TileResult))}
        assert (classified, session.scalars(select(EmptyTile)).all()) == (set(TILES[:-1]), [])

    with client_for() as client:
        job = summary["job_id"]
        answer = client.get(f"/imagery/{job}/{ZOOM}/{X0 + 1}/{Y0}")
        assert (answer.status_code, answer.headers["content-type"]) == (200, "image/jpeg")
        assert answer.content == memory_kind[(ZOOM, X0 + 1, Y0)]
        assert client.get(f"/imagery/{job}/{'/'.join(map(str, TILES[-1][:3]))}").status_code == 404  # not in memory


def test_the_kinds_are_asked_not_named_outside_core_sources() -> None:
    """No module of the producer, the workers or the HTTP server asks which kind a source is."""
    kinds = "|".join(("FolderSource", "ArchiveSource", "MBTilesSource", "PMTilesSource", "RasterSource", "UrlSource"))
    asks = re.compile(rf"isinstance\([^)]*\b({kinds})\b")
    found = [f"{path.relative_to(REPO_ROOT)}:{number}" for package in ("producer", "worker", "api")
             for path in sorted((REPO_ROOT / package).rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1) if asks.search(line)]
    assert found == []


def test_an_unknown_kind_and_an_incomplete_record_are_one_line_source_errors(memory_kind: dict) -> None:
    with pytest.raises(SourceError, match=r"^unknown tile source kind 's3': this tileclass reads folder, .*, memory$"):
        source_from_record({"kind": "s3", "name": "bucket"})
    with pytest.raises(SourceError, match=r"^the job's memory source record is incomplete \('name'\)$"):
        source_from_record({"kind": "memory"})
    assert source_from_record({"kind": "memory", "name": "city"}) == MemorySource("city")


def test_what_each_source_error_means(tmp_path: Path) -> None:
    """Missing or down on this host: ``SourceUnavailable``, a host error (no tile fails); a path that leaves its
    folder: a ``SourceError`` that is no host error."""
    from core.settings import load_settings
    from core.sources.folder import FolderSource
    from core.sources.layouts import Layout
    from core.sources.roots import resolve_root, safe_join

    assert issubclass(SourceDown, SourceUnavailable) and issubclass(SourceUnavailable, SourceError)
    assert issubclass(SourceUnavailable, HostError) and not issubclass(SourceError, HostError)
    assert not issubclass(TileAbsent, SourceError) and not issubclass(TileUnreadable, SourceError)
    with pytest.raises(SourceUnavailable, match="unknown tile source 'elsewhere'"):
        resolve_root("elsewhere", load_settings())
    with pytest.raises(SourceError, match="is not a plain path inside its root") as caught:
        safe_join(tmp_path, "../..")
    assert not isinstance(caught.value, HostError)
    (tmp_path / "mountpoint").mkdir()
    source = FolderSource.at(tmp_path / "mountpoint", layout=Layout.parse(), settings=load_settings())
    with pytest.raises(SourceUnavailable, match=r"is empty \(not mounted\?\) on this host"):
        source.reader(load_settings())


def run_python(code: str) -> str:
    answer = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return answer.stdout.strip()


def test_importing_the_sources_roots_and_contract_loads_no_kind() -> None:
    """``worker/training.py`` imports the roots: that must load neither httpx, pmtiles nor the raster stack."""
    loaded = run_python("import sys, core.sources, core.sources.roots, core.sources.base, core.sources.walk; "
                        "print(sorted({m.split('.')[0] for m in sys.modules} & {'httpx', 'httpcore', 'pmtiles', "
                        "'rasterio', 'rio_tiler'}))")
    assert loaded == "[]"


def test_importing_fetch_and_raster_leaves_logging_and_warnings_alone() -> None:
    """httpx's log level is set where a fetch client is made, the raster warning filter where a raster is opened."""
    seen = run_python(
        "import logging, warnings\n"
        "before = (logging.getLogger('httpx').level, list(warnings.filters))\n"
        "import core.sources.fetch, core.sources.raster, core.sources.url\n"
        "print(before == (logging.getLogger('httpx').level, list(warnings.filters)))\n"
        "core.sources.fetch.new_client(core.sources.fetch.FetchPolicy())\n"
        "print(logging.getLogger('httpx').level == logging.WARNING)\n")
    assert seen.splitlines() == ["True", "True"]


def test_the_broker_redis_helper_is_none_off_redis_and_bounded_on_it(redis_url: str) -> None:
    from core.broker import redis_client
    from core.settings import load_settings

    settings = load_settings()
    assert redis_client(settings.model_copy(update={"broker_url": "filesystem://"}), timeout=5) is None
    client = redis_client(settings.model_copy(update={"broker_url": redis_url}), timeout=3)
    try:
        assert client.ping() is True
        assert client.connection_pool.connection_kwargs["socket_timeout"] == 3
        assert client.connection_pool.connection_kwargs["socket_connect_timeout"] == 3
    finally:
        client.close()


def test_sources_say_what_they_are(tmp_path: Path) -> None:
    """``info()``: the kind, name and location of every source, a folder's layout, a PMTiles header's zooms and
    bounds."""
    from pmtiles.tile import zxy_to_tileid

    from core.settings import load_settings
    from core.sources.folder import FolderSource
    from core.sources.layouts import Layout
    from core.sources.pmtiles import PMTilesSource
    from core.sources.url import UrlSource
    from testkit.archives import directory, hand_made_pmtiles

    settings = load_settings()
    (tmp_path / "tiles").mkdir()
    folder = FolderSource.at(tmp_path / "tiles", layout=Layout.parse("{z}-{x}-{y}.jpg"), settings=settings).info()
    assert (folder.kind, folder.location, folder.layout, folder.zooms) == (
        "folder", str((tmp_path / "tiles").resolve()), "xyz:{z}-{x}-{y}.jpg", None)
    png = b"a tile"  # never read: info() reads the header
    archive = hand_made_pmtiles(tmp_path / "city.pmtiles", root=directory((zxy_to_tileid(4, 8, 5), 0, len(png), 1)),
                                tile_data=png, min_zoom=4, max_zoom=6, min_lon_e7=-91_000_000, min_lat_e7=384_000_000,
                                max_lon_e7=-90_000_000, max_lat_e7=900_000_000)
    pmtiles = PMTilesSource.at(archive, settings=settings).info()
    assert (pmtiles.kind, pmtiles.location, pmtiles.zooms) == ("pmtiles", str(archive.resolve()), (4, 5, 6))
    assert pmtiles.bounds is not None and pmtiles.bounds.as_list() == [-9.1, 38.4, -9.0, 85.0511]  # clamped north
    server = UrlSource.at("https://tiles.example/{z}/{x}/{y}.png?key={env:KEY}", settings=settings.model_copy(
        update={"sources": settings.sources.model_copy(update={"env": ["KEY"]})})).info()
    assert (server.kind, server.location, server.bounds) == ("url", "https://tiles.example/{z}/{x}/{y}.png?key={env:KEY}",
                                                             None)
