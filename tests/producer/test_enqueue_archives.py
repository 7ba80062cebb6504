"""``tileclass enqueue`` of MBTiles and PMTiles archives and ``@NAME`` sources, on the embedded broker and SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.tiles import Tile
from testkit.archives import pmtiles_from_mbtiles, write_mbtiles
from testkit.rasters import mosaic
from tests.labelmaker import labelmaker_tiles
from tests.producer.conftest import Deployment, classify, cli, consume, tiles_in

pytestmark = pytest.mark.integration

TILES = [(15, x, y) for x in range(17000, 17006) for y in range(11000, 11004)] + [(16, 34000, 22000)]


@pytest.fixture
def archive(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    mbtiles = write_mbtiles(tmp_path / "city.mbtiles", [(*t, b"jpeg") for t in TILES])
    return mbtiles if request.param == "mbtiles" else pmtiles_from_mbtiles(tmp_path / "city.pmtiles", mbtiles)


def enqueue_json(*args: object) -> dict:
    result = cli("enqueue", *map(str, args), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("archive", ["mbtiles", "pmtiles"], indirect=True)
def test_an_archive_is_counted_enqueued_by_coordinates_and_a_rerun_skips_what_is_classified(
        embedded: Deployment, archive: Path) -> None:
    counted = enqueue_json(archive, "--model", embedded.model, "--dry-run", "--batch-size", 10)
    assert (counted["per_zoom"], counted["batches"], counted["job_id"]) == ({"15": 24, "16": 1}, 4, None)
    assert counted["source"] == {"kind": archive.suffix[1:], "name": counted["root"], "path": str(archive)}
    assert consume(embedded.app()) == []  # a dry run sends nothing

    summary = enqueue_json(archive, "--model", embedded.model, "--zoom", "15", "--batch-size", 10)
    batches = consume(embedded.app())
    assert (summary["enqueued"], len(batches)) == (24, 3)
    assert sorted(tiles_in(batches)) == sorted((*t, None) for t in TILES if t[0] == 15)  # no paths: read by key
    assert {b["source"] for b in batches} == {summary["root"]}
    classify(batches[:2])
    left = enqueue_json(archive, "--model", embedded.model, "--dry-run")
    done = len(tiles_in(batches[:2]))
    assert (left["found"], left["skipped"], left["enqueued"]) == (25, done, 25 - done)
    again = enqueue_json(archive, "--model", embedded.model, "--zoom", "15", "--force")
    assert (again["job_id"], again["enqueued"]) == (summary["job_id"] + 1, 24)


def test_a_named_source_is_enqueued_under_its_name(embedded: Deployment, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    archive = write_mbtiles(tmp_path / "city.mbtiles", [(*t, b"jpeg") for t in TILES])
    monkeypatch.setenv("TILECLASS_SOURCES", json.dumps({"city2024": str(archive)}))
    summary = enqueue_json("@city2024", "--model", embedded.model)
    assert summary["source"] == {"kind": "mbtiles", "name": "city2024", "path": str(archive)}
    assert {b["source"] for b in consume(embedded.app())} == {"city2024"}


@pytest.mark.parametrize(("args", "message"), [
    (["@nowhere"], "unknown source @nowhere: this host names none: set TILECLASS_SOURCES"),
    (["city.mbtiles", "--layout", "{z}-{x}-{y}.jpg"], "--layout and --scheme apply to folders; a mbtiles source"),
    (["city.mbtiles", "--scheme", "tms"], "--layout and --scheme apply to folders"),
    (["notes.mbtiles"], "is not a readable MBTiles file"),
    (["notes.txt"], "is a file of a kind tileclass does not read: SOURCE is a folder, a .mbtiles, .pmtiles, .tif "
                    "or .tiff file, an http(s):// URL template, or @NAME"),
])
def test_bad_sources_are_one_line_errors(embedded: Deployment, tmp_path: Path, args: list[str],
                                         message: str) -> None:
    write_mbtiles(tmp_path / "city.mbtiles", [(*t, b"jpeg") for t in TILES])
    (tmp_path / "notes.mbtiles").write_text("not sqlite")
    (tmp_path / "notes.txt").write_text("not tiles")
    result = cli("enqueue", *args, "--model", embedded.model)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_geotiff_is_enqueued_at_the_zoom_closest_to_its_resolution(embedded: Deployment, tmp_path: Path) -> None:
    pictures = {}
    for file in sorted(labelmaker_tiles(tmp_path / "z17-jpg").glob("*.jpg")):
        x, y, z = map(int, file.stem.split("-"))
        pictures[Tile(z, x, y)] = file
    raster = mosaic(tmp_path / "drone.tif", pictures)  # 8 tiles of a 3 x 3 block
    result = cli("enqueue", raster, "--model", embedded.model, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert "zoom 17: the closest to the raster's resolution (1.19 m per pixel" in result.stderr
    counted = json.loads(result.stdout)
    assert counted["per_zoom"] == {"17": 9} and counted["source"]["kind"] == "geotiff"  # the 3 x 3 cover
    assert json.loads(cli("enqueue", raster, "--model", embedded.model, "--dry-run", "--json", "--zoom", "16")
                      .stdout)["per_zoom"] == {"16": 4}
