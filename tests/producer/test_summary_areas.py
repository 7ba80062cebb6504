"""``tileclass summary`` and ``/api/summary``: each class's mapped ground area (km² on the WGS84 ellipsoid) next to
its tile count, on SQLite and PostgreSQL; tiles known only by a path have no area.

Expected areas come from pyproj's Geod over each tile's box (tests/core/test_tile_area.py), not from core.tile_area,
so a summary that sums the wrong rows or zooms fails here."""

from __future__ import annotations

import json
from collections.abc import Iterator

import mercantile
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.config import ServeConfig
from api.main import create_app
from core.db import session_scope
from core.jobs import create_job
from core.results import record_results
from core.settings import get_settings
from tests.core.test_tile_area import geod_area_m2
from tests.factories import add_model, scored

# Three z16 Forest tiles on the equator, two z16 River tiles at 60° N, and one z17 Residential tile at 45° S: a job
# may hold several zooms, and a z16 tile at the equator covers about 4x the ground of one at 60° N.
EQUATOR, SIXTY, SOUTH = mercantile.tile(10.0, 0.001, 16), mercantile.tile(10.0, 60.0, 16), mercantile.tile(10, -45, 17)
TILES = {"Forest": [mercantile.Tile(EQUATOR.x + i, EQUATOR.y, 16) for i in range(3)],
         "River": [mercantile.Tile(SIXTY.x, SIXTY.y + i, 16) for i in range(2)],
         "Residential": [SOUTH]}


def geodesic_km2(tiles: list[mercantile.Tile]) -> float:
    return sum(geod_area_m2(*mercantile.bounds(tile)) for tile in tiles) / 1e6


def invoke(*args: str) -> tuple[int, str]:
    from producer.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


@pytest.fixture
def jobs(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, int]]:
    """A job of tiles with coordinates (TILES), and a job of tiles known only by their paths."""
    monkeypatch.setenv("TILECLASS_DATABASE_URL", database_url)
    get_settings.cache_clear()
    with session_scope(database_url) as session:
        digest = add_model(session)
        mapped = create_job(session, model_hash=digest).id
        record_results(session, source_name="root", model_hash=digest, job_id=mapped, results=[
            scored(t.z, t.x, t.y, label) for label, tiles in TILES.items() for t in tiles])
        paths = create_job(session, model_hash=digest).id
        record_results(session, source_name="folder", model_hash=digest, job_id=paths, results=[
            scored(None, None, None, "Forest", path=f"img{i}.png") for i in range(3)])
    yield mapped, paths


def test_each_class_has_its_true_ground_area(jobs: tuple[int, int]) -> None:
    code, out = invoke("summary", str(jobs[0]), "--json")
    assert code == 0, out
    areas = {c["label"]: c["area_km2"] for c in json.loads(out)["classes"]}
    assert areas == {label: pytest.approx(geodesic_km2(tiles), rel=1e-6) for label, tiles in TILES.items()}
    per_tile = areas["Forest"] / 3, areas["River"] / 2
    assert 3.9 < per_tile[0] / per_tile[1] < 4.1  # the "4x larger at the equator than at 60° N"

    code, text = invoke("summary", str(jobs[0]))
    assert code == 0, text
    rows = {line.split()[0]: line.split() for line in text.splitlines()[1:5]}
    assert rows["Forest"][1:3] == ["3", "50.0%"] and rows["Forest"][4] == "km²"
    assert float(rows["Forest"][3]) == pytest.approx(areas["Forest"], rel=1e-2)  # printed to 3 significant digits
    assert float(rows["River"][3]) == pytest.approx(areas["River"], rel=1e-2)


def test_a_region_counts_the_area_of_its_tiles_only(jobs: tuple[int, int]) -> None:
    west, south, _, north = mercantile.bounds(EQUATOR)
    box = f"{west + 1e-6},{south + 1e-6},{west + 2e-6},{north - 1e-6}"  # inside the first Forest tile only
    code, out = invoke("summary", "--bbox", box, "--zoom", "16", "--json")
    assert code == 0, out
    areas = {c["label"]: (c["count"], c["area_km2"]) for c in json.loads(out)["classes"]}
    assert areas["Forest"] == (1, pytest.approx(geodesic_km2([EQUATOR]), rel=1e-6))
    assert areas["River"] == (0, 0.0) and areas["Residential"] == (0, 0.0)


def test_tiles_known_only_by_a_path_have_no_area(jobs: tuple[int, int]) -> None:
    code, out = invoke("summary", str(jobs[1]), "--json")
    assert code == 0, out
    assert {c["label"]: c["area_km2"] for c in json.loads(out)["classes"]} == {
        "Forest": None, "River": None, "Residential": None}
    code, text = invoke("summary", str(jobs[1]))
    assert code == 0 and text.splitlines()[2].split()[:5] == ["Forest", "3", "100.0%", "-", "km²"]


def test_the_api_summary_gives_the_same_areas(jobs: tuple[int, int]) -> None:
    with TestClient(create_app(ServeConfig())) as client:
        for job in jobs:
            answer = client.get("/api/summary", params={"job": job})
            assert answer.status_code == 200
            code, out = invoke("summary", str(job), "--json")
            assert code == 0 and answer.json()["classes"] == json.loads(out)["classes"]
        forest = answer.json()["classes"][0]
    assert forest["label"] == "Forest" and forest["area_km2"] is None
