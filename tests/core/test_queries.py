"""core.queries on a real SQLite file and a real PostgreSQL database: which model answers, filters, summaries,
streams, bad input, and that the lookups use the tile indexes."""

from __future__ import annotations

import inspect
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import mercantile
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from core.db import session_scope
from core.errors import NotFoundError, TileclassError, TileError
from core.jobs import create_job
from core.models.lookups import find_model
from core.queries import (
    BBox,
    TileRange,
    extents,
    iter_cells,
    iter_results,
    point_result,
    query_bbox,
    results_statement,
    select_results,
    summarize,
    tile_result,
    tile_statement,
)
from core.results import Failure, record_failures, record_results
from core.tiles import Tile
from tests.factories import add_model, scored

integration = pytest.mark.integration
T0 = datetime(2026, 1, 1, tzinfo=UTC)
Z = 12


def box(min_x: int, max_x: int, min_y: int, max_y: int, z: int = Z) -> BBox:
    """A bbox just inside the outer edges of a block of tiles."""
    west, _, _, north = mercantile.bounds(min_x, min_y, z)
    _, south, east, _ = mercantile.bounds(max_x, max_y, z)
    inset = 1e-6
    return BBox(west + inset, south + inset, east - inset, north - inset)


def seed(url: str) -> dict[str, Any]:
    """Model 'old' (registered first) classified 10x10 tiles as River after model 'new' classified 5x5 of them."""
    with session_scope(url) as session:
        old = add_model(session, "old", created_at=T0)
        new = add_model(session, "new", created_at=T0 + timedelta(days=1))
        job_old = create_job(session, model_hash=old).id
        job_new = create_job(session, model_hash=new).id
    labels = ["Forest", "Residential"]
    with session_scope(url) as session:
        record_results(session, source_name="root", model_hash=new, job_id=job_new, results=[
            scored(Z, x, y, labels[(x + y) % 2], 0.5 + 0.05 * (x - 100)) for x in range(100, 105)
            for y in range(200, 205)
        ])
    with session_scope(url) as session:
        record_results(session, source_name="root", model_hash=old, job_id=job_old, results=[
            scored(Z, x, y, "River", 0.9) for x in range(100, 110) for y in range(200, 210)
        ])
    return {"old": old, "new": new, "job_old": job_old, "job_new": job_new}


@integration
def test_a_tile_is_answered_by_the_latest_registered_model_with_a_result_for_it(database_url: str) -> None:
    ids = seed(database_url)
    with session_scope(database_url) as session:
        both = tile_result(session, tile=Tile(Z, 101, 201))
        only_old = tile_result(session, tile=Tile(Z, 108, 208))
        chosen = tile_result(session, tile=Tile(Z, 101, 201), model_hash=ids["old"])
        assert tile_result(session, tile=Tile(Z, 50, 50)) is None
        assert tile_result(session, tile=Tile(Z, 108, 208), model_hash=ids["new"]) is None
    # 'new' was registered later but classified earlier: registration order decides.
    assert both is not None and (both.model_hash, both.label, both.job_id) == (ids["new"], "Forest", ids["job_new"])
    assert both.confidence == pytest.approx(0.55)
    assert only_old is not None and (only_old.model_hash, only_old.label) == (ids["old"], "River")
    assert chosen is not None and chosen.label == "River"
    assert both.tile == Tile(Z, 101, 201, f"{Z}/101/201.png") and both.classified_at.tzinfo is not None
    assert [label for label, _ in both.top(3)] == ["Forest", "Residential", "River"]
    assert both.top(1)[0][1] == pytest.approx(0.55)


@integration
def test_a_point_in_the_western_hemisphere_finds_its_tile(database_url: str) -> None:
    lon, lat, zoom = -9.45, 38.84, 17
    tile = mercantile.tile(lon, lat, zoom)
    with session_scope(database_url) as session:
        digest = add_model(session)
        record_results(session, source_name="root", model_hash=digest, job_id=None,
                       results=[scored(zoom, tile.x, tile.y, "River")])
    with session_scope(database_url) as session:
        answer = point_result(session, lon=lon, lat=lat, zoom=zoom)
        neighbour = point_result(session, lon=lon + 0.01, lat=lat, zoom=zoom)
    assert answer is not None and answer.tile[:3] == (zoom, tile.x, tile.y) and answer.label == "River"
    assert neighbour is None


@integration
def test_a_region_is_answered_by_one_model_the_latest_with_results_there(database_url: str) -> None:
    ids = seed(database_url)
    with session_scope(database_url) as session:
        whole = select_results(session, bbox=box(100, 109, 200, 209), zoom=Z)
        east = select_results(session, bbox=box(106, 109, 200, 209), zoom=Z)
        rows = list(iter_results(session, selection=whole))
        east_rows = query_bbox(session, bbox=box(106, 109, 200, 209), zoom=Z)
    assert whole.model is not None and whole.model.hash == ids["new"]
    assert east.model is not None and east.model.hash == ids["old"]
    assert [(r.tile.x, r.tile.y) for r in rows if r.tile] == [(x, y) for x in range(100, 105) for y in range(200, 205)]
    assert {r.model_hash for r in rows} == {ids["new"]}
    assert len(east_rows) == 4 * 10 and {r.label for r in east_rows} == {"River"}


@integration
def test_region_filters_combine(database_url: str) -> None:
    ids = seed(database_url)
    region = box(101, 103, 201, 203)  # 9 tiles of 'new', inside its 5x5 block
    with session_scope(database_url) as session:
        def tiles(**filters: Any) -> list[tuple[int, int, str]]:
            return [(r.tile.x, r.tile.y, r.label) for r in query_bbox(session, bbox=region, zoom=Z, **filters)
                    if r.tile is not None]

        everything = tiles()
        forest = tiles(labels=["Forest"])
        confident = tiles(min_confidence=0.6)
        both = tiles(labels=["Forest", "Residential"], min_confidence=0.6, limit=2)
        old_job = tiles(job_id=ids["job_old"])
        old_model_forest = tiles(model_ref=ids["old"][:8], labels=["Forest"])
    assert len(everything) == 9
    assert forest == [(x, y, "Forest") for x in range(101, 104) for y in range(201, 204) if (x + y) % 2 == 0]
    assert {x for x, _, _ in confident} == {102, 103}  # confidence 0.5 + 0.05 * (x - 100) >= 0.6
    assert both == [(102, 201, "Residential"), (102, 202, "Forest")]
    assert len(old_job) == 9 and {label for _, _, label in old_job} == {"River"}
    assert old_model_forest == []


@integration
def test_bad_region_input_names_the_problem(database_url: str) -> None:
    ids = seed(database_url)
    region = box(100, 104, 200, 204)
    with session_scope(database_url) as session:
        with pytest.raises(NotFoundError, match=r"unknown label 'Forrest' .*labels are Forest, River, Residential"):
            select_results(session, bbox=region, zoom=Z, labels=["Forrest"])
        with pytest.raises(NotFoundError, match=r"job 99 does not exist \(job ids run 1\.\.2\)"):
            select_results(session, job_id=99)
        with pytest.raises(NotFoundError,
                           match=r"model 'ffffff' is not a model name or a registered model hash \(registered: "):
            select_results(session, bbox=region, zoom=Z, model_ref="ffffff")
        with pytest.raises(NotFoundError, match="not a model name or a registered model hash"):
            find_model(session, ref=ids["old"][:3])  # too short to be a prefix
        with pytest.raises(TileclassError, match=f"job {ids['job_old']} was classified by model {ids['old'][:12]}"):
            select_results(session, job_id=ids["job_old"], model_ref=ids["new"])
        with pytest.raises(TileError, match="--bbox needs --zoom"):
            select_results(session, bbox=region)
        with pytest.raises(TileError, match="zoom 25 is out of range"):
            select_results(session, bbox=region, zoom=25)
        with pytest.raises(TileclassError, match=r"within 0\.\.1"):
            select_results(session, bbox=region, zoom=Z, min_confidence=1.5)
        with pytest.raises(TileclassError, match="name a job or a region"):
            select_results(session)
        assert find_model(session, ref=ids["old"].upper()[:10]).hash == ids["old"]


@integration
def test_a_tile_reclassified_by_a_later_job_belongs_to_that_job(database_url: str) -> None:
    with session_scope(database_url) as session:
        digest = add_model(session)
        first, second = create_job(session, model_hash=digest).id, create_job(session, model_hash=digest).id
    with session_scope(database_url) as session:
        record_results(session, source_name="root", model_hash=digest, job_id=first,
                       results=[scored(Z, x, 0, "Forest") for x in range(6)])
    with session_scope(database_url) as session:
        record_results(session, source_name="root", model_hash=digest, job_id=second,
                       results=[scored(Z, x, 0, "River") for x in (4, 5)])
    with session_scope(database_url) as session:
        kept = list(iter_results(session, selection=select_results(session, job_id=first)))
        moved = list(iter_results(session, selection=select_results(session, job_id=second)))
    assert sorted(r.tile.x for r in kept if r.tile) == [0, 1, 2, 3]
    assert sorted((r.tile.x, r.label) for r in moved if r.tile) == [(4, "River"), (5, "River")]


@integration
def test_summary_counts_classes_failures_and_models(database_url: str) -> None:
    ids = seed(database_url)
    failures = [Failure(Tile(Z, x, 230, f"{Z}/{x}/230.png"), reason)
                for x, reason in [(100, "truncated"), (101, "truncated"), (102, "zero bytes")]]
    with session_scope(database_url) as session:
        record_failures(session, source_name="root", model_hash=ids["old"], job_id=ids["job_old"], failures=failures)
    with session_scope(database_url) as session:
        by_job = summarize(session, selection=select_results(session, job_id=ids["job_old"]))
        region = summarize(session, selection=select_results(session, bbox=box(100, 109, 200, 209), zoom=Z))
    assert by_job.classified == 100 and by_job.failed == 3
    assert [(c.label, c.count, c.share) for c in by_job.classes] == [
        ("Forest", 0, 0.0), ("River", 100, 1.0), ("Residential", 0, 0.0)]
    assert by_job.top_reasons == [("truncated", 2), ("zero bytes", 1)]
    assert [(m.hash, m.tiles, m.selected) for m in by_job.models] == [(ids["old"], 100, True)]
    assert region.classified == 25 and region.failed == 0  # the failures lie outside the bbox
    assert {c.label: c.count for c in region.classes} == {"Forest": 13, "River": 0, "Residential": 12}
    assert sum(c.share for c in region.classes) == pytest.approx(1.0)
    assert [(m.hash, m.tiles, m.selected) for m in region.models] == [(ids["new"], 25, True), (ids["old"], 100, False)]
    forest = region.as_dict()["classes"][0]
    assert forest.pop("area_km2") > 0  # its value: tests/producer/test_summary_areas.py
    assert forest == {  # the map's colour of the model's first class
        "label": "Forest", "count": 13, "share": pytest.approx(0.52), "uncertain": 0, "colour": "#cc6677"}


@integration
def test_extents_span_results_and_failures_per_zoom(database_url: str) -> None:
    ids = seed(database_url)
    with session_scope(database_url) as session:
        record_failures(session, source_name="root", model_hash=ids["old"], job_id=ids["job_old"],
                        failures=[Failure(Tile(Z, 120, 199, "f.png"), "corrupt")])
        record_results(session, source_name="root", model_hash=ids["old"], job_id=ids["job_old"],
                       results=[scored(Z + 1, 7, 9, "River")])
    with session_scope(database_url) as session:
        spans = extents(session, selection=select_results(session, job_id=ids["job_old"]))
    assert spans == [(TileRange(Z, 100, 120, 199, 209), 101), (TileRange(Z + 1, 7, 7, 9, 9), 1)]


def _plan(session: Session, stmt: Any) -> str:
    dialect = session.get_bind().dialect
    sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if dialect.name == "sqlite" else "EXPLAIN "
    return "\n".join(str(row[-1]) for row in session.connection().exec_driver_sql(prefix + sql))


@integration
def test_lookups_use_the_tile_indexes(database_url: str) -> None:
    with session_scope(database_url) as session:
        old, new = add_model(session, "old", created_at=T0), add_model(session, "new")
        job = create_job(session, model_hash=new).id
    for digest in (old, new):
        with session_scope(database_url) as session:
            record_results(session, source_name="root", model_hash=digest, job_id=None,
                           results=[scored(Z, x, y, "Forest") for x in range(60) for y in range(50)])
    with session_scope(database_url) as session:  # the job re-classified a few tiles: a small share of the table
        record_results(session, source_name="root", model_hash=new, job_id=job,
                       results=[scored(Z, x, 0, "River") for x in range(20)])
    with session_scope(database_url) as session:
        session.connection().exec_driver_sql("ANALYZE")
        region = select_results(session, bbox=box(10, 14, 10, 14), zoom=Z, labels=["Forest"], min_confidence=0.5)
        plans = {
            "tile, latest model": _plan(session, tile_statement(Tile(Z, 5, 5))),
            "tile, one model": _plan(session, tile_statement(Tile(Z, 5, 5), model_hash=old)),
            "region": _plan(session, results_statement(region, limit=10)),
            "job": _plan(session, results_statement(select_results(session, job_id=job))),
        }
    expected = {"tile, latest model": ("ix_tile_results_zxy", "uq_tile_results_model_zxy"),
                "tile, one model": ("uq_tile_results_model_zxy",),
                "region": ("uq_tile_results_model_zxy", "ix_tile_results_zxy"),
                "job": ("ix_tile_results_job",)}
    for name, plan in plans.items():
        assert any(index in plan for index in expected[name]), f"{name}: {plan}"
        assert "SCAN tile_results" not in plan and "Seq Scan on tile_results" not in plan, f"{name}: {plan}"
    if database_url.startswith("sqlite"):  # rows leave the index in (x, y) order: no sort step
        assert "TEMP B-TREE" not in plans["region"], plans["region"]


@integration
@pytest.mark.slow
def test_postgres_streams_through_a_server_side_cursor(postgres_url: str) -> None:
    with session_scope(postgres_url) as session:
        digest = add_model(session)
        job = create_job(session, model_hash=digest).id
    rows = [scored(Z, x, y, "Forest") for x in range(120) for y in range(100)]
    with session_scope(postgres_url) as session:
        for start in range(0, len(rows), 2000):  # one statement holds at most 65,535 parameters
            record_results(session, source_name="root", model_hash=digest, job_id=job,
                           results=rows[start : start + 2000])
    with session_scope(postgres_url, read_only=True) as session:
        stream = iter_results(session, selection=select_results(session, job_id=job), yield_per=500)
        assert inspect.isgenerator(stream)
        first = next(stream)
        open_cursors = session.execute(text("SELECT count(*) FROM pg_cursors WHERE NOT is_holdable")).scalar_one()
        rest = list(stream)
        cells = list(iter_cells(session, selection=select_results(session, job_id=job)))
    assert open_cursors >= 1  # rows arrive in fetches from a named cursor, not all at once
    seen = {(a.tile.x, a.tile.y) for a in [first, *rest] if a.tile}
    assert len(rest) + 1 == 12_000 and len(seen) == 12_000
    assert len(cells) == 12_000 and {c.label for c in cells} == {"Forest"}


@integration
def test_sqlite_readers_do_not_block_writers(sqlite_url: str) -> None:
    with session_scope(sqlite_url) as session:
        digest = add_model(session)
        record_results(session, source_name="root", model_hash=digest, job_id=None,
                       results=[scored(Z, x, 0, "Forest") for x in range(50)])
    writer = create_engine(sqlite_url, connect_args={"timeout": 2})
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with writer.begin() as conn:
                conn.execute(text("UPDATE tile_results SET label = 'River' WHERE x = 0"))
        except BaseException as exc:  # reported to the test thread below
            errors.append(exc)

    with session_scope(sqlite_url, read_only=True) as session:
        stream = iter_results(session, selection=select_results(session, bbox=box(0, 49, 0, 0), zoom=Z),
                              yield_per=10)
        next(stream)
        thread = threading.Thread(target=write)
        thread.start()
        thread.join()
        assert len(list(stream)) == 49
    writer.dispose()
    assert errors == []


def test_bbox_parses_western_and_southern_degrees() -> None:
    assert BBox.parse("-9.47,38.82,-9.43,38.86") == BBox(-9.47, 38.82, -9.43, 38.86)
    assert BBox.parse(" -70.1 , -33.5 , -70.0 , -33.4 ") == BBox(-70.1, -33.5, -70.0, -33.4)
    assert str(BBox.parse("-9.47,38.82,-9.43,38.86")) == "-9.47,38.82,-9.43,38.86"


@pytest.mark.parametrize(("text", "problem"), [
    ("-9.47,38.82,-9.43", "expected W,S,E,N"),
    ("a,b,c,d", "expected W,S,E,N"),
    ("-9.47,38.82,-9.43,nan", "is outside lon -180..180"),
    ("-9.43,38.82,-9.47,38.86", r"west \(-9.43\) must be less than east \(-9.47\)"),
    ("-9.47,38.86,-9.43,38.82", r"south \(38.86\) must be less than north \(38.82\)"),
    ("-190,38.82,-9.43,38.86", "is outside lon -180..180"),
    ("-9.47,-89,-9.43,38.86", r"lat -85.0511..85.0511"),
])
def test_malformed_bboxes_are_refused(text: str, problem: str) -> None:
    with pytest.raises(TileError, match=problem):
        BBox.parse(text)


@settings(max_examples=60, deadline=None)
@given(
    zoom=st.integers(0, 8),
    west=st.floats(-180, 179), width=st.floats(0.001, 40),
    south=st.floats(-85, 84), height=st.floats(0.001, 30),
)
def test_bbox_tiles_are_the_tiles_mercantile_lists(zoom: int, west: float, width: float, south: float,
                                                   height: float) -> None:
    east, north = min(west + width, 180.0), min(south + height, 85.0)
    listed = list(mercantile.tiles(west, south, east, north, zooms=[zoom]))
    tiles = BBox(west, south, east, north).tiles(zoom)
    assert (tiles.min_x, tiles.max_x) == (min(t.x for t in listed), max(t.x for t in listed))
    assert (tiles.min_y, tiles.max_y) == (min(t.y for t in listed), max(t.y for t in listed))
    assert tiles.count == len(listed)

