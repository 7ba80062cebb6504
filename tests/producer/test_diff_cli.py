"""``tileclass diff`` end to end (issue 29, part 3): the text report, ``--json``, the changed tiles written to
GeoPackage and GeoJSON and read back through GDAL (pyogrio), and one-line errors. The jobs are those of
``tests/core/test_diff.py``, whose answers differ on known blocks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mercantile
import pytest
import shapely
from pyogrio.raw import read

from core.settings import get_settings
from tests.core.test_diff import BUILT, PARTIAL_B, SIDE, UNSURE_B, WIDENED, X0, Y0, Jobs, Z, jobs  # noqa: F401
from tests.producer.conftest import cli


@pytest.fixture
def database_url(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI reads the database named by the environment: SQLite here (core's tests cover PostgreSQL)."""
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    return sqlite_url


def test_the_text_report_shows_the_matrix_and_the_changes(jobs: Jobs) -> None:  # noqa: F811
    result = cli("diff", str(jobs.a), str(jobs.b))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"{SIDE * SIDE:,} tiles classified by both" in lines[0]
    assert lines[2].split()[:2] == ["changed", str(len(BUILT | WIDENED))]
    assert lines[3].split()[:3] == ["uncertain", "change", "2"]
    assert any(line.split()[:5] == ["Forest", "->", "Residential", str(len(BUILT)), "tiles"] for line in lines)
    assert any(line.split()[:5] == ["Forest", "->", "River", str(len(WIDENED)), "tiles"] for line in lines)


def test_json_equals_the_file_and_the_changes_read_back_through_gdal(jobs: Jobs, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "changes"
    result = cli("diff", str(jobs.a), str(jobs.b), "--json", "--out", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document == json.loads((out / "diff.json").read_text())
    assert document["changed"]["tiles"] == len(BUILT | WIDENED) and document["uncertain_change"]["tiles"] == 2
    for name in ("changes.gpkg", "changes.geojson"):
        meta, _, geometry, values = read(out / name)
        assert meta["crs"] == "EPSG:4326" and meta["geometry_type"] == "Polygon"
        fields = dict(zip(meta["fields"], (list(v) for v in values), strict=True))
        assert list(fields) == ["z", "x", "y", "from_class", "to_class", "confidence_a", "confidence_b", "change"]
        tiles = {(x - X0, y - Y0): change for x, y, change in zip(fields["x"], fields["y"], fields["change"],
                                                                   strict=True)}
        assert tiles == {**{t: "confident" for t in BUILT | WIDENED}, UNSURE_B: "uncertain", PARTIAL_B: "uncertain"}
        boxes = shapely.from_wkb(geometry)
        expected = [shapely.box(*mercantile.bounds(int(x), int(y), Z)) for x, y in zip(fields["x"], fields["y"],
                                                                                       strict=True)]
        # GPKG keeps every bit; GDAL's GeoJSON writer prints 15 significant digits.
        assert all(shapely.hausdorff_distance(a, b) < 1e-12 for a, b in zip(boxes, expected, strict=True))


def test_ogrinfo_opens_the_geopackage(jobs: Jobs, tmp_path: Path) -> None:  # noqa: F811
    assert cli("diff", str(jobs.a), str(jobs.b), "--out", str(tmp_path / "d")).exit_code == 0
    info = subprocess.run(["ogrinfo", "-so", "-al", str(tmp_path / "d" / "changes.gpkg")], capture_output=True,
                          text=True, check=True).stdout
    assert f"Feature Count: {len(BUILT | WIDENED) + 2}" in info


def test_groups_on_the_command_line(jobs: Jobs, tmp_path: Path) -> None:  # noqa: F811
    result = cli("diff", str(jobs.a), str(jobs.b), "--groups", "built", "--json", "--out", str(tmp_path / "g"))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["changed"]["tiles"] == len(BUILT)
    meta, _, _, values = read(tmp_path / "g" / "changes.gpkg")
    assert meta["fields"][3:5].tolist() == ["from_group", "to_group"]
    assert set(values[4]) == {"built"}


@pytest.mark.parametrize(("arguments", "message"), [
    (["{a}", "{zoom}"], "at zoom 16 and job {zoom} at zoom 17"),
    (["{a}", "{classes}"], "give --groups NAME"),
    (["{a}", "{b}", "--groups", "nope"], "no grouping 'nope'"),
    (["{a}", "{a}"], "two different jobs"),
    (["{a}", "{b}", "--out", "/no/such/folder/out"], "folder '/no/such/folder' does not exist"),
])
def test_errors_are_one_line(jobs: Jobs, arguments: list[str], message: str) -> None:  # noqa: F811
    names = {"a": jobs.a, "b": jobs.b, "zoom": jobs.other_zoom, "classes": jobs.other_classes}
    result = cli("diff", *(argument.format(**names) for argument in arguments))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and message.format(**names) in result.output


def test_two_jobs_of_one_model_say_why_nothing_is_compared(jobs: Jobs) -> None:  # noqa: F811
    from core.db import session_scope
    from core.jobs import create_job
    from core.results import record_results
    from tests.factories import model_hash, scored

    with session_scope(jobs.url) as session:  # the same model again over two tiles: they become the new job's
        again = create_job(session, model_hash=model_hash("diff-a")).id
        record_results(session, model_hash=model_hash("diff-a"), job_id=again, source_name="spring",
                       results=[scored(Z, X0 + x, Y0, "Forest") for x in (0, 1)])
    result = cli("diff", str(jobs.a), str(again))
    assert result.exit_code == 0, result.output
    assert "0 tiles classified by both" in result.output and "the same model" in result.output
    assert "only in job" in result.output and f"only in job {again}: 2 tiles" in result.output
