"""``tileclass vectorize`` end to end: files that GDAL reads back (pyogrio's reader, and ``ogrinfo`` where it is
installed), whose polygons cover exactly the job's tiles; ``--groups``; one-line errors (issue 29, part 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import mercantile
import pytest
import shapely
from pyogrio import read_info
from pyogrio.raw import read

from core.class_groups import add_grouping
from core.db import session_scope
from core.jobs import create_job
from core.polygon_files import partial_path, write_polygons
from core.results import Empty, record_empty, record_results
from core.settings import get_settings
from core.tiles import Tile
from core.vectorize import TilePolygon
from tests.core.test_vectorize import PICTURE, Z, confidence_of, drawn
from tests.factories import add_model, scored
from tests.producer.conftest import cli

CODES = {"F": "Forest", "R": "River", "H": "Residential", "u": "Forest"}
FIELDS = ["class", "tile_count", "area_m2", "mean_confidence", "min_confidence"]


@pytest.fixture
def job(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"safe to land": ["Forest"], "avoid": ["River"]}))
    with session_scope() as session:
        digest = add_model(session, "vectorize-cli")
        add_model(session, "another")
        job_id = create_job(session, model_hash=digest).id
        results = [scored(Z, x, y, CODES[c], confidence_of(x, y, c)) for x, y, c in drawn(PICTURE)]
        record_results(session, model_hash=digest, job_id=job_id, source_name="tiles", results=results,
                       uncertain_below=0.5)
        # An empty tile in the ring's hole: never part of a polygon.
        x, y, _ = next(drawn(PICTURE))
        record_empty(session, model_hash=digest, job_id=job_id, source_name="tiles",
                     empty=[Empty(Tile(Z, x + 1, y + 1, "hole.png"), "transparent")])
        add_grouping(session, name="landing", model_ref=digest, path=groups)
        add_grouping(session, name="stranger", model_ref=add_model(session, "another"), path=groups)
    return job_id


def read_back(path: Path) -> tuple[list[shapely.Geometry], dict[str, list[Any]]]:
    meta, _, geometry, values = read(path)
    assert meta["crs"] == "EPSG:4326" and meta["geometry_type"] == "Polygon"
    return list(shapely.from_wkb(geometry)), dict(zip(meta["fields"], (list(v) for v in values), strict=True))


@pytest.mark.parametrize("suffix", ["gpkg", "fgb", "geojson"])
def test_each_format_reads_back_through_gdal_covering_the_tiles(job: int, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"polygons.{suffix}"
    result = cli("vectorize", str(job), "--out", str(out), "--block", "3")
    assert result.exit_code == 0, result.output
    assert "wrote 5 polygons" in result.output and not partial_path(out).exists()
    shapes, fields = read_back(out)
    assert list(fields) == FIELDS
    assert sorted(zip(fields["class"], fields["tile_count"], strict=True)) == [
        ("Forest", 16), ("Residential", 6), ("River", 1), ("River", 1), ("River", 1)]
    confident = [(x, y) for x, y, c in drawn(PICTURE) if c != "u"]
    tiles = shapely.union_all([shapely.box(*mercantile.bounds(x, y, Z)) for x, y in confident])
    union = shapely.union_all(shapes)
    if suffix == "geojson":  # GDAL's GeoJSON writer prints 15 significant digits: equal within 1e-12 degrees
        assert shapely.hausdorff_distance(union, tiles) < 1e-12 and len(shapes) == 5
    else:  # GPKG and FGB keep every bit
        assert shapely.equals(union, tiles)


def test_groups_name_the_field_group(job: int, tmp_path: Path) -> None:
    out = tmp_path / "landing.gpkg"
    assert cli("vectorize", str(job), "-o", str(out), "--groups", "landing", "--keep-uncertain").exit_code == 0
    _, fields = read_back(out)
    assert sorted(zip(fields["group"], fields["tile_count"], strict=True)) == [
        ("avoid", 1), ("avoid", 1), ("avoid", 1), ("other", 6), ("safe to land", 16), ("uncertain", 1)]


@pytest.mark.parametrize(("args", "message"), [
    (["-o", "out.gpkg", "--format", "fgb"], "--format fgb does not match 'out.gpkg'"),
    (["-o", "out.shp"], "cannot tell the format of 'out.shp'"),
    (["-o", "out.gpkg", "--format", "kml"], "unknown format 'kml': choose one of gpkg, fgb, geojson"),
    (["-o", "missing/out.gpkg"], "folder 'missing' does not exist"),
    (["-o", "out.gpkg", "--min-area", "-1"], "--min-area must be 0 or more"),
    (["-o", "out.gpkg", "--groups", "nope"], "no grouping 'nope'"),
    (["-o", "out.gpkg", "--groups", "stranger"], "grouping 'stranger' is for model"),
])
def test_mistakes_are_one_line(job: int, tmp_path: Path, args: list[str], message: str) -> None:
    result = cli("vectorize", str(job), *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "out.gpkg").exists()


def test_chunks_are_appended_into_one_layer(tmp_path: Path) -> None:
    polygons = [TilePolygon("Forest", shapely.box(i, 0, i + 0.5, 1), 1, 10.0 + i, 0.9, 0.9) for i in range(7)]
    for fmt in ("gpkg", "fgb", "geojson"):
        out = tmp_path / f"chunked.{fmt}"
        assert write_polygons(iter(polygons), out, fmt=fmt, chunk=3) == 7
        _, fields = read_back(out)
        assert sorted(fields["area_m2"]) == [10.0 + i for i in range(7)]  # FlatGeobuf orders by its index
        assert read_info(out)["features"] == 7


@pytest.mark.parametrize("suffix", ["gpkg", "fgb"])
def test_ogrinfo_opens_the_files(job: int, tmp_path: Path, suffix: str) -> None:
    """GDAL's own ogrinfo (Debian gdal-bin, which scripts/services.sh installs) opens them as a GIS user would."""
    out = tmp_path / f"polygons.{suffix}"
    assert cli("vectorize", str(job), "--out", str(out)).exit_code == 0
    info = subprocess.run(["ogrinfo", "-so", "-al", str(out)], capture_output=True, text=True, check=True).stdout
    assert "Feature Count: 5" in info and "tile_count" in info


def test_a_host_without_the_raster_extra_is_told_which_to_install(job: int, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyogrio", None)  # what `import pyogrio` meets where it is not installed
    result = cli("vectorize", str(job), "--out", str(tmp_path / "out.gpkg"))
    assert result.exit_code == 2 and "needs the 'raster' extra" in result.output, result.output
    assert "pip install 'tileclass[raster]'" in result.output and "Traceback" not in result.output
