"""``tileclass correct`` through the CLI on a real SQLite file and a real PostgreSQL database: one tile, a CSV and a
GeoJSON import, ``query tile`` showing the result and the correction, and the bad inputs (an unknown label or
model, CSV rows that cannot be read: one line naming the row, nothing imported)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mercantile
import pytest
from sqlalchemy import func, select

from core.corrections import default_author
from core.db import session_scope
from core.jobs import create_job
from core.results import record_results
from core.schema import TileCorrection, TileResult
from core.settings import get_settings
from core.tiles import Tile
from tests.factories import add_model, scored
from tests.producer.conftest import cli

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def models(database_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Model 'older' (Forest, River, Residential), which classified 17/100/200 as Forest, and the newest model
    'coast' (Sand, Sea), named 'coast-v1'."""
    monkeypatch.setenv("TILECLASS_DATABASE_URL", database_url)
    get_settings.cache_clear()
    with session_scope() as session:
        older = add_model(session, "older", created_at=T0)
        coast = add_model(session, "coast", classes=["Sand", "Sea"], created_at=T0 + timedelta(days=1))
        job = create_job(session, model_hash=older).id
        record_results(session, model_hash=older, job_id=job, source_name="tiles",
                       results=[scored(17, 100, 200, "Forest", 0.81)])
    assert cli("models", "name", coast[:12], "coast-v1").exit_code == 0
    return older, coast


def stored() -> list[tuple[int, int, int, str, str, str, str | None]]:
    with session_scope() as session:
        rows = session.execute(select(TileCorrection.z, TileCorrection.x, TileCorrection.y, TileCorrection.label,
                                      TileCorrection.model_hash, TileCorrection.author, TileCorrection.origin)
                               .order_by(TileCorrection.id))
        return [tuple(row) for row in rows]  # type: ignore[misc]


def one_line_error(result: object, *words: str) -> str:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 2, output  # type: ignore[attr-defined]
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1, output
    for word in words:
        assert word in output, output
    return str(output)


def test_a_tile_is_corrected_beside_its_result_and_query_tile_shows_both(models: tuple[str, str]) -> None:
    older, _ = models
    result = cli("correct", "17/100/200", "river", "--model", older[:8], "--author", "ana")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == ("17/100/200: corrected to River by ana (model " + older[:12] + " says Forest "
                                     "(0.810); its result is kept)")
    again = cli("correct", "17/100/200", "River", "--model", older[:8], "--author", "ana")
    assert "already corrected to River; nothing recorded" in again.stdout
    assert stored() == [(17, 100, 200, "River", older, "ana", None)]
    with session_scope() as session:  # the model's own result is untouched
        assert session.scalar(select(TileResult.label).where(TileResult.x == 100)) == "Forest"

    assert cli("correct", "17/100/200", "Forest", "--model", older[:8], "--author", "bo").exit_code == 0
    shown = cli("query", "tile", "17/100/200", "--json")
    document = json.loads(shown.stdout)
    assert (document["label"], document["classified"]) == ("Forest", True)
    assert [(c["label"], c["author"], c["model"]) for c in document["corrections"]] == [
        ("Forest", "bo", older), ("River", "ana", older)]  # newest first
    text = cli("query", "tile", "17/100/200").stdout
    assert "17/100/200: Forest (confidence 0.810)" in text
    assert "  corrected to Forest by bo · " in text and "1 earlier correction" in text


def test_the_default_model_is_the_newest_and_the_author_the_os_user(models: tuple[str, str]) -> None:
    _, coast = models
    unclassified = cli("correct", "15/1/2", "sea", "--json")
    assert unclassified.exit_code == 0, unclassified.output
    assert json.loads(unclassified.stdout) == {"tile": "15/1/2", "label": "Sea", "recorded": 1, "model": coast,
                                               "author": default_author(), "predicted": None}
    report = cli("query", "tile", "15/1/2")
    assert report.exit_code == 1 and "not classified by any model" in report.stdout  # still not classified
    assert "corrected to Sea by " + default_author() in report.stdout


def test_bad_labels_models_and_arguments_are_one_line_errors(models: tuple[str, str]) -> None:
    older, _ = models
    one_line_error(cli("correct", "17/100/200", "Lake", "--model", older[:8]),
                   "'Lake' is not a class of model", "its classes are Forest, River, Residential")
    one_line_error(cli("correct", "17/100/200", "Forest"), "is not a class of model coast-v1", "Sand, Sea")
    one_line_error(cli("correct", "17/100/200", "Sea", "--model", "no-such-model"), "model 'no-such-model'",
                   "coast-v1")
    one_line_error(cli("correct", "17/999999/1", "Sea"), "out of range")
    one_line_error(cli("correct", "17/100/200"), "give a tile and its class")
    one_line_error(cli("correct", "17/100/200", "Sea", "--file", "c.csv"), "not both")
    one_line_error(cli("correct", "--file", "missing.csv"), "does not exist")
    one_line_error(cli("correct", "17/100/200", "Sea", "--author", "  "), "--author must not be empty")
    assert stored() == []


def test_a_csv_is_imported_once_and_a_bad_row_imports_nothing(models: tuple[str, str], tmp_path: Path) -> None:
    older, _ = models
    good = tmp_path / "corrections.csv"
    good.write_text("\ufeffZ,x,y,Label,note\n17,100,200,river,seen on site\n\n17,100,201, Forest ,\n"
                    "17,100,201,Forest,listed twice\n", encoding="utf-8")
    first = cli("correct", "--file", good, "--model", older[:8], "--author", "ana")
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == f"recorded 2 corrections from corrections.csv by ana for model {older[:12]}"
    assert stored() == [(17, 100, 200, "River", older, "ana", "corrections.csv"),
                        (17, 100, 201, "Forest", older, "ana", "corrections.csv")]
    repeat = cli("correct", "--file", good, "--model", older[:8], "--author", "ana", "--json")
    assert json.loads(repeat.stdout)["recorded"] == 0 and json.loads(repeat.stdout)["unchanged"] == 2

    bad_rows = {
        "z,x,y,label\n17,1,1,Forest\n17,1,x,Forest\n": "corrections.csv row 3: y 'x' is not a whole number",
        "z,x,y,label\n17,1,1,Forest\n17,1,1,River\n": "corrections.csv row 3: tile 17/1/1 is labelled River here "
                                                      "but Forest in row 2",
        "z,x,y,label\n17,1,1,Forest\n25,1,1,Forest\n": "corrections.csv row 3: zoom 25 is out of range",
        "z,x,y,label\n17,1,1,Forest\n17,131072,1,Forest\n": "corrections.csv row 3: tile 17/131072/1 is out of range",
        "z,x,y,label\n17,1,1,Forest\n17,1,2,Lake\n": "corrections.csv row 3: 'Lake' is not a class of model",
        "z,x,y,label\n17,1,1,Forest\n17,1,2\n": "corrections.csv row 3: has 3 values, fewer than the header's",
        "z,x,y,label\n17,1,1,\n": "corrections.csv row 2: the label is empty",
        "z,x,label\n17,1,Forest\n": "corrections.csv row 1 must be a header naming the columns z, x, y and label "
                                    "(missing y; found z, x, label)",
        "z,x,y,label\n": "corrections.csv has no corrections",
    }
    for text, message in bad_rows.items():
        good.write_text(text)
        one_line_error(cli("correct", "--file", good, "--model", older[:8]), message)
    assert len(stored()) == 2  # nothing of a file with a bad row was imported


def test_geojson_polygons_label_the_tiles_they_cover(models: tuple[str, str], tmp_path: Path) -> None:
    """Two polygons meeting mid-column: each takes its tiles, a tile on the shared edge goes to the label that
    covers more of it."""
    west, _, east, north = mercantile.bounds(8000, 5000, 14)
    _, south, _, _ = mercantile.bounds(8000, 5001, 14)  # a 3 x 2 block of tiles: x 8000..8002, y 5000..5001
    east = mercantile.bounds(8002, 5000, 14).east
    width = east - west
    split = west + width * 0.55  # the middle column (8001) is 65% sand, 35% sea

    def feature(label: str, w: float, e: float) -> dict[str, object]:
        ring = [[w, south], [e, south], [e, north], [w, north], [w, south]]
        return {"type": "Feature", "properties": {"label": label}, "geometry": {"type": "Polygon",
                                                                               "coordinates": [ring]}}

    inset = width * 1e-4
    areas = tmp_path / "areas.geojson"
    areas.write_text(json.dumps({"type": "FeatureCollection", "features": [
        feature("sand", west + inset, split), feature("SEA", split, east - inset)]}))
    result = cli("correct", "--file", areas, "--zoom", "14", "--author", "cy")
    assert result.exit_code == 0, result.output
    labels = {(x, y): label for _, x, y, label, *_ in stored()}
    assert labels == {(8000, 5000): "Sand", (8000, 5001): "Sand", (8001, 5000): "Sand", (8001, 5001): "Sand",
                      (8002, 5000): "Sea", (8002, 5001): "Sea"}

    one_line_error(cli("correct", "--file", areas), "needs --zoom")
    areas.write_text(json.dumps({"type": "FeatureCollection", "features": [
        feature("Sand", west, split), {"type": "Feature", "properties": {}, "geometry": None}]}))
    one_line_error(cli("correct", "--file", areas, "--zoom", "14"), "areas.geojson feature 2: has no 'label'")
    areas.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"label": "Sea"}, "geometry": {"type": "Point", "coordinates": [0, 0]}}]}))
    one_line_error(cli("correct", "--file", areas, "--zoom", "14"), "feature 1: is a Point")
    areas.write_text(json.dumps({"type": "FeatureCollection", "features": [feature("Lake", west, split)]}))
    one_line_error(cli("correct", "--file", areas, "--zoom", "14"), "feature 1: 'Lake' is not a class")
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(TileCorrection)) == 6


def test_a_correction_shows_in_the_tile_document_even_for_a_tile_without_a_result(models: tuple[str, str]) -> None:
    from core.queries import report_tile

    assert cli("correct", "16/5/6", "Sand", "--author", "di").exit_code == 0
    with session_scope(read_only=True) as session:
        document = report_tile(session, tile=Tile(16, 5, 6)).as_dict()
    assert document["classified"] is False and document["corrections"][0]["label"] == "Sand"
    assert document["corrections"][0]["author"] == "di"
