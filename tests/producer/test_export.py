"""``tileclass export`` and the streaming writers: 10,000+ rows on SQLite and PostgreSQL, read back with real
readers; writers that write as they consume; a failed export leaves no file."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import mercantile
import pytest
from shapely.geometry import shape
from typer.testing import CliRunner

from core.db import session_scope
from core.export import write_csv, write_geojson, write_json
from core.jobs import create_job
from core.queries import TileAnswer
from core.results import record_results
from core.settings import get_settings
from core.tiles import Tile
from tests.factories import CLASSES, add_model, model_hash, scored

ROWS, COLUMNS = 105, 100  # 10,500 tiles


def invoke(*args: str) -> tuple[int, str, str]:
    from producer.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def seed_job(url: str) -> int:
    """A job of 10,500 tiles at zoom 16, plus 10 tiles a later job re-classified (they belong to that job)."""
    with session_scope(url) as session:
        digest = add_model(session)
        first, later = create_job(session, model_hash=digest).id, create_job(session, model_hash=digest).id
    tiles = [scored(16, 30000 + i % COLUMNS, 20000 + i // COLUMNS, CLASSES[i % 3], 0.5 + (i % 50) / 100)
             for i in range(ROWS * COLUMNS + 10)]
    for start in range(0, len(tiles), 2500):  # one statement holds at most 65,535 parameters
        with session_scope(url) as session:
            record_results(session, source_name="root", model_hash=digest, job_id=first,
                           results=tiles[start : start + 2500])
    with session_scope(url) as session:
        record_results(session, source_name="root", model_hash=digest, job_id=later, results=tiles[-10:])
    return first


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "geojson"])
def test_export_streams_a_10500_tile_job(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                         fmt: str) -> None:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", database_url)
    get_settings.cache_clear()
    job = seed_job(database_url)
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / f"job.{fmt}"
    code, stdout, stderr = invoke("export", str(job), "--format", fmt, "--out", str(out))
    assert code == 0, stderr
    assert stdout == f"wrote 10,500 tiles of job {job} to {out}\n"
    assert "10500/10500" in stderr  # the progress bar reached the total
    assert sorted(p.name for p in folder.iterdir()) == [out.name]  # no .partial left behind
    if fmt == "csv":
        with out.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        tiles = {(int(r["x"]), int(r["y"])): r for r in rows}
        sample = tiles[(30000 + 7, 20000 + 3)]  # tile number 307
        assert (sample["z"], sample["label"], sample["model"], sample["job"]) == ("16", "River", model_hash(), str(job))
        assert float(sample["confidence"]) == pytest.approx(0.57) == float(sample["p_River"])
    else:
        features = json.loads(out.read_text())["features"]
        for feature in features[:: len(features) // 50]:
            polygon, props = shape(feature["geometry"]), feature["properties"]
            assert polygon.is_valid and polygon.exterior.is_ccw
            centre = polygon.centroid
            assert tuple(mercantile.tile(centre.x, centre.y, 16)) == (props["x"], props["y"], 16)
        tiles = {(f["properties"]["x"], f["properties"]["y"]) for f in features}
    assert len(tiles) == ROWS * COLUMNS  # each tile once, and not the 10 that moved to the later job
    assert (30000, 20000 + ROWS) not in tiles


def answers(count: int) -> list[TileAnswer]:
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    return [TileAnswer(Tile(10, i, 5, f"10/{i}/5.png"), "root", "f" * 64, "River", 0.75,
                       {"Forest": 0.25, "River": 0.75}, 3, stamp) for i in range(count)]


@pytest.mark.parametrize("writer", ["geojson", "csv", "json"])
def test_writers_write_each_row_before_reading_the_next(writer: str) -> None:
    out = io.StringIO()
    seen_lengths: list[int] = []

    def rows() -> Iterator[TileAnswer]:
        for answer in answers(5):
            seen_lengths.append(len(out.getvalue()))
            yield answer

    if writer == "geojson":
        assert write_geojson(rows(), out) == 5
    elif writer == "csv":
        assert write_csv(rows(), out, class_names=["Forest", "River"]) == 5
    else:
        assert write_json(rows(), out) == 5
    # The output grew between every two rows: nothing was collected first and written at the end.
    assert all(later > earlier for earlier, later in itertools.pairwise(seen_lengths))


def test_written_formats_read_back() -> None:
    out = io.StringIO()
    write_csv(answers(2), out, class_names=["Forest", "River"])
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[1] == {"z": "10", "x": "1", "y": "5", "root": "root", "path": "10/1/5.png", "label": "River",
                       "confidence": "0.75", "uncertain": "false", "coverage": "", "model": "f" * 64, "job": "3",
                       "classified_at": "2026-01-01T00:00:00+00:00", "p_Forest": "0.25", "p_River": "0.75"}
    out = io.StringIO()
    write_geojson([], out)
    assert json.loads(out.getvalue()) == {"type": "FeatureCollection", "features": []}
    out = io.StringIO()
    write_json(answers(1), out)
    assert json.loads(out.getvalue())[0]["tile"] == "10/0/5"
    out = io.StringIO()
    plain = Tile(None, None, None, "a.jpg")
    write_geojson([TileAnswer(plain, "scans", "f" * 64, "River", 0.7, {}, None, answers(1)[0].classified_at)], out)
    feature = json.loads(out.getvalue())["features"][0]
    assert feature["geometry"] is None and feature["properties"]["path"] == "a.jpg"


@pytest.mark.parametrize(("args", "message"), [
    (["export", "9", "--format", "csv", "--out", "x.csv"], "Error: job 9 does not exist"),
    (["export", "1", "--format", "shp", "--out", "x.shp"], "Error: unknown format 'shp': choose geojson or csv"),
    (["export", "1", "--format", "csv", "--out", "missing/x.csv"], "Error: cannot write 'missing/x.csv'"),
])
def test_export_bad_input(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str) -> None:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    code, out, err = invoke(*args)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith(message)


def test_an_export_that_fails_midway_leaves_no_file(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    from producer.commands import export as export_command

    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    with session_scope(sqlite_url) as session:
        digest = add_model(session)
        job = create_job(session, model_hash=digest).id
        record_results(session, source_name="root", model_hash=digest, job_id=job,
                       results=[scored(9, x, 1, "Forest") for x in range(50)])

    def disk_fills_up(rows: Iterator[TileAnswer], advance: object, every: int = 1000) -> Iterator[TileAnswer]:
        for count, row in enumerate(rows):
            if count == 20:
                raise OSError("No space left on device")
            yield row

    monkeypatch.setattr(export_command, "counted", disk_fills_up)
    folder = tmp_path / "out"
    folder.mkdir()
    code, _, _ = invoke("export", str(job), "--format", "geojson", "--out", str(folder / "job.geojson"))
    assert code != 0
    assert list(folder.iterdir()) == []
