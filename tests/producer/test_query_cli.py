"""``tileclass query tile|point|bbox`` through CliRunner on a real SQLite file: answers, formats, negative
coordinates, exit codes and one-line errors."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import mercantile
import pytest
from shapely.geometry import box as shapely_box
from shapely.geometry import shape
from typer.testing import CliRunner

from core.db import session_scope
from core.jobs import create_job
from core.results import record_results
from core.settings import get_settings
from tests.factories import add_model, model_hash, scored

LISBON = "-9.47,38.82,-9.43,38.86"
Z = 15
X_RANGE, Y_RANGE = range(15522, 15526), range(12539, 12545)  # the tiles of LISBON at zoom 15
LABELS = ["Forest", "River", "Residential"]


def invoke(*args: str) -> tuple[int, str, str]:
    from producer.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def label_of(x: int, y: int) -> str:
    return LABELS[(x + y) % 3]


def confidence_of(x: int, y: int) -> float:
    return round(0.4 + 0.1 * (y - Y_RANGE.start), 2)


@pytest.fixture
def lisbon(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Model 'm' classified a ring one tile wider than LISBON's tiles; an older model 'old' classified one tile."""
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    with session_scope(sqlite_url) as session:
        old = add_model(session, "old", created_at=datetime(2025, 1, 1, tzinfo=UTC))
        digest = add_model(session, "m", created_at=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=1))
        job = create_job(session, model_hash=digest).id
        rows = [scored(Z, x, y, label_of(x, y), confidence_of(x, y))
                for x in range(X_RANGE.start - 1, X_RANGE.stop + 1) for y in range(Y_RANGE.start - 1, Y_RANGE.stop + 1)]
        record_results(session, source_name="root", model_hash=digest, job_id=job, results=rows)
        record_results(session, source_name="root", model_hash=old, job_id=None,
                       results=[scored(Z, 15522, 12539, "River", 0.99)])
    return sqlite_url


def test_query_tile_prints_label_confidence_and_top_classes(lisbon: str) -> None:
    code, out, _ = invoke("query", "tile", "15/15523/12541")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "15/15523/12541: Residential (confidence 0.600)"
    assert lines[1].startswith(f"  model {model_hash('m')[:12]} · job 1 · classified ")
    assert [line.split() for line in lines[3:]] == [["Residential", "0.600"], ["Forest", "0.200"], ["River", "0.200"]]


def test_query_tile_json_with_another_model_and_top_k(lisbon: str) -> None:
    code, out, _ = invoke("query", "tile", "15/15522/12539", "--model", model_hash("old")[:8], "--top-k", "1",
                          "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["classified"] is True and answer["model"] == model_hash("old")
    assert (answer["z"], answer["x"], answer["y"], answer["label"]) == (15, 15522, 12539, "River")
    assert answer["top"] == [{"label": "River", "probability": pytest.approx(0.99)}]
    latest = json.loads(invoke("query", "tile", "15/15522/12539", "--json")[1])
    assert latest["model"] == model_hash("m") and latest["label"] == label_of(15522, 12539)


EAST = mercantile.tile(9.45, 38.84, Z)


# Where model 'm' (and any model) has results: the ring around LISBON's tiles; model 'old': one tile.
RING = "zoom 15: x 15521..15526, y 12538..12545 (lon -9.48120..-9.41528, lat 38.80547..38.87393)"
OLD = "zoom 15: x 15522..15522, y 12539..12539 (lon -9.47021..-9.45923, lat 38.85682..38.86537)"


@pytest.mark.parametrize(("args", "expected", "hint"), [
    (["query", "tile", "15/1/1"], "15/1/1: not classified by any model",
     f"15/1/1 lies outside the results of any model at {RING}"),
    (["query", "tile", "15/15523/12541", "--model", model_hash("old")[:12]],
     f"15/15523/12541: not classified by model {model_hash('old')[:12]}",
     f"15/15523/12541 lies outside the results of model {model_hash('old')[:12]} at {OLD}"),
    (["query", "point", "--lon", "9.45", "--lat", "38.84", "--zoom", "15"],
     f"point (9.45, 38.84) at zoom 15 is tile 15/{EAST.x}/{EAST.y}: not classified by any model",
     f"15/{EAST.x}/{EAST.y} lies outside the results of any model at {RING}"),
    # the usual mistakes: x and y swapped, lon and lat swapped, another zoom
    (["query", "tile", "15/12541/15523"], "15/12541/15523: not classified by any model",
     f"15/12541/15523 lies outside the results of any model at {RING}; x and y swapped? 15/15523/12541 is inside"),
    (["query", "point", "--lon", "38.84", "--lat", "-9.45", "--zoom", "15"],
     f"point (38.84, -9.45) at zoom 15 is tile 15/{mercantile.tile(38.84, -9.45, 15).x}/"
     f"{mercantile.tile(38.84, -9.45, 15).y}: not classified by any model",
     f"15/{mercantile.tile(38.84, -9.45, 15).x}/{mercantile.tile(38.84, -9.45, 15).y} lies outside the results of "
     f"any model at {RING}; lon and lat swapped? the point (lon -9.45, lat 38.84) is inside"),
    (["query", "tile", "17/62090/50160"], "17/62090/50160: not classified by any model",
     f"no result of any model at zoom 17; the results are at {RING}"),
])
def test_a_tile_without_a_result_is_not_classified_with_exit_code_1_and_a_hint(lisbon: str, args: list[str],
                                                                               expected: str, hint: str) -> None:
    code, out, err = invoke(*args)
    assert (code, out, err) == (1, expected + "\n", f"hint: {hint}\n")


def test_a_hole_in_the_results_and_an_empty_database_say_so(lisbon: str, sqlite_url: str) -> None:
    from sqlalchemy import delete

    from core.schema import TileResult

    with session_scope(sqlite_url) as session:
        session.execute(delete(TileResult).where(TileResult.x == 15523, TileResult.y == 12541))
    assert invoke("query", "tile", "15/15523/12541")[2] == (
        f"hint: 15/15523/12541 lies within the results of any model at {RING}, but has none itself: not classified "
        "yet, or failed ('tileclass failures JOB' lists why)\n")
    with session_scope(sqlite_url) as session:
        session.execute(delete(TileResult))
    assert invoke("query", "tile", "15/15523/12541")[2] == (
        "hint: there is no result of any model yet: 'tileclass status' shows the jobs\n")


def test_not_classified_in_json(lisbon: str) -> None:
    code, out, err = invoke("query", "tile", "15/15523/12541", "--model", model_hash("old"), "--json")
    assert (code, err) == (1, "")
    assert json.loads(out) == {"tile": "15/15523/12541", "classified": False, "empty": False,
                               "model": model_hash("old"), "corrections": [], "results_extent": [
                                   {"zoom": 15, "x": [15522, 15522], "y": [12539, 12539],
                                    "bbox": pytest.approx([-9.47021, 38.85682, -9.45923, 38.86537], abs=1e-5)}]}


@pytest.mark.parametrize("lon_args", [["--lon", "-9.45"], ["--lon=-9.45"]])
def test_query_point_takes_a_western_longitude(lisbon: str, lon_args: list[str]) -> None:
    tile = mercantile.tile(-9.45, 38.84, Z)
    code, out, _ = invoke("query", "point", *lon_args, "--lat", "38.84", "--zoom", "15")
    assert code == 0, out
    assert out.splitlines()[0] == (f"point (-9.45, 38.84) at zoom 15 is tile 15/{tile.x}/{tile.y}: "
                                   f"{label_of(tile.x, tile.y)} (confidence {confidence_of(tile.x, tile.y):.3f})")


@pytest.mark.parametrize("bbox_args", [["--bbox", LISBON], [f"--bbox={LISBON}"]])
def test_query_bbox_takes_negative_coordinates_and_lists_the_tiles_in_order(lisbon: str,
                                                                            bbox_args: list[str]) -> None:
    code, out, _ = invoke("query", "bbox", *bbox_args, "--zoom", "15")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["tile", "label", "confidence", "model", "job"]
    listed = [line.split()[0] for line in lines[1:-1]]
    assert listed == [f"15/{x}/{y}" for x in X_RANGE for y in Y_RANGE]
    assert lines[-1].startswith("24 tiles (bbox -9.47,38.82,-9.43,38.86, zoom 15, model ")


def test_query_bbox_geojson_is_valid_for_a_gis(lisbon: str) -> None:
    code, out, _ = invoke("query", "bbox", "--bbox", LISBON, "--zoom", "15", "--format", "geojson")
    assert code == 0
    collection = json.loads(out)
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 24
    for feature in collection["features"]:
        polygon = shape(feature["geometry"])
        props = feature["properties"]
        assert polygon.is_valid and polygon.exterior.is_ccw  # RFC 7946: exterior rings counter-clockwise
        outline = shapely_box(*mercantile.bounds(props["x"], props["y"], props["z"]))
        assert polygon.bounds == pytest.approx(outline.bounds, abs=1e-7)
        assert polygon.symmetric_difference(outline).area < 1e-4 * outline.area  # coordinates rounded to 1e-7
        centre = polygon.centroid
        assert tuple(mercantile.tile(centre.x, centre.y, Z)) == (props["x"], props["y"], props["z"])
        assert props["label"] == label_of(props["x"], props["y"])
        assert props["confidence"] == pytest.approx(confidence_of(props["x"], props["y"]))
        assert props["model"] == model_hash("m") and props["job"] == 1


def test_query_bbox_filters_with_csv_and_json_output(lisbon: str) -> None:
    filters = ["--label", "Forest", "-l", "River", "--min-confidence", "0.6"]
    code, out, _ = invoke("query", "bbox", "--bbox", LISBON, "--zoom", "15", *filters, "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    expected = [(x, y) for x in X_RANGE for y in Y_RANGE
                if label_of(x, y) in ("Forest", "River") and confidence_of(x, y) >= 0.6]
    assert [(int(r["x"]), int(r["y"])) for r in rows] == expected
    assert {r["label"] for r in rows} <= {"Forest", "River"}
    assert all(float(r["p_" + r["label"]]) == pytest.approx(float(r["confidence"])) for r in rows)
    code, out, _ = invoke("query", "bbox", f"--bbox={LISBON}", "-z", "15", *filters, "--limit", "3", "-f", "json")
    assert code == 0
    assert [(a["x"], a["y"]) for a in json.loads(out)] == expected[:3]


@pytest.mark.parametrize(("args", "message"), [
    (["query", "tile", "3/9/0"], "Error: tile 3/9/0 is out of range: x and y must be 0..7 at zoom 3"),
    (["query", "tile", "17/abc/1"], "Error: invalid tile '17/abc/1': expected Z/X/Y, for example 17/70420/42997"),
    (["query", "point", "--lon", "-9.45", "--lat", "38.84", "--zoom", "25"],
     "Error: zoom 25 is out of range: zoom must be 0..24"),
    (["query", "bbox", "--bbox", "-9.47,38.82,-9.43", "--zoom", "15"],
     "Error: invalid bbox '-9.47,38.82,-9.43': expected W,S,E,N in degrees, e.g. -9.47,38.82,-9.43,38.86"),
    (["query", "bbox", "--bbox", "-9.43,38.82,-9.47,38.86", "--zoom", "15"],
     "Error: bbox [-9.43, 38.82, -9.47, 38.86] is empty or inverted: west (-9.43) must be less than east (-9.47)"),
    (["query", "bbox", "--bbox", LISBON, "--zoom", "15", "--label", "Farmland"],
     "Error: unknown label 'Farmland' for model " + model_hash("m")[:12] + ": labels are Forest, River, Residential"),
    (["query", "bbox", "--bbox", LISBON, "--zoom", "15", "--job", "7"],
     "Error: job 7 does not exist (job ids run 1..1)"),
    (["query", "tile", "15/1/1", "--model", "abcdef"],
     "Error: model 'abcdef' is not a model name or a registered model hash"),
    (["query", "bbox", "--bbox", LISBON, "--zoom", "15", "--format", "xml"],
     "Error: unknown format 'xml': choose table, json, csv or geojson"),
])
def test_bad_input_is_one_line_with_exit_code_2(lisbon: str, args: list[str], message: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2
    assert out == "" and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.strip().startswith(message)


def test_query_creates_the_schema_of_a_fresh_sqlite_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    get_settings.cache_clear()
    code, out, _ = invoke("query", "tile", "1/0/0")
    assert code == 1 and "not classified" in out
