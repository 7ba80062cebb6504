"""``tileclass summary`` through CliRunner: per-class counts and shares, failures, models; job or bbox."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from core.db import session_scope
from core.jobs import create_job
from core.results import Failure, record_failures, record_results
from core.schema import JobKind
from core.settings import get_settings
from core.tiles import Tile
from tests.factories import add_model, model_hash, scored

LISBON = "-9.47,38.82,-9.43,38.86"  # tiles x 15522..15525, y 12539..12544 at zoom 15


def invoke(*args: str) -> tuple[int, str, str]:
    from producer.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def cli_db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    return sqlite_url


def seed(url: str) -> tuple[int, int]:
    """Job 1: 6 Forest + 2 River tiles inside LISBON, 2 Residential outside, 3 failures; job 2: a training run."""
    with session_scope(url) as session:
        digest = add_model(session)
        job = create_job(session, model_hash=digest).id
        training = create_job(session, kind=JobKind.TRAIN).id
        inside = [scored(15, 15522 + i % 4, 12539 + i // 4, "Forest" if i < 6 else "River") for i in range(8)]
        outside = [scored(15, 15600 + i, 12600, "Residential") for i in range(2)]
        record_results(session, source_name="root", model_hash=digest, job_id=job, results=inside + outside)
        record_failures(session, source_name="root", model_hash=digest, job_id=job, failures=[
            Failure(Tile(15, 15523, 12543 + i, f"bad{i}.png"), reason)
            for i, reason in enumerate(["truncated", "truncated", "not an image"])
        ])
    return job, training


def test_summary_of_a_job_lists_every_class_failures_and_models(cli_db: str) -> None:
    job, _ = seed(cli_db)
    code, out, _ = invoke("summary", str(job))
    assert code == 0, out
    lines = [line.split() for line in out.splitlines()]
    assert out.splitlines()[0] == f"Summary of job {job}, model {model_hash()[:12]}"
    assert lines[1] == ["classified", "10"]
    assert [row[:3] + row[4:] for row in lines[2:5]] == [
        ["Forest", "6", "60.0%", "km²"], ["River", "2", "20.0%", "km²"], ["Residential", "2", "20.0%", "km²"]]
    # a z15 tile near 38.8° N covers about (40,075 km / 2^15)² cos²(38.8°) = 0.907 km² (a sphere; within 1%),
    # the Residential tiles near 38.3° N 0.92 km² (exact areas: tests/producer/test_summary_areas.py)
    assert [float(row[3]) for row in lines[2:5]] == pytest.approx([6 * 0.907, 2 * 0.907, 2 * 0.92], rel=0.01)
    assert lines[5:9] == [["failed", "3"], ["2", "truncated"], ["1", "not", "an", "image"], ["empty", "0"]]
    assert lines[10][:3] == [model_hash()[:12], "10", "tiles"] and lines[10][-1] == "(shown)"


def test_summary_json_of_a_bbox(cli_db: str) -> None:
    seed(cli_db)
    code, out, _ = invoke("summary", "--bbox", LISBON, "--zoom", "15", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert (data["job"], data["bbox"], data["zoom"], data["model"]) == (None, LISBON, 15, model_hash())
    assert data["classified"] == 8
    areas = [c.pop("area_km2") for c in data["classes"]]
    assert data["classes"] == [{"label": "Forest", "count": 6, "share": 0.75, "uncertain": 0, "colour": "#cc6677"},
                               {"label": "River", "count": 2, "share": 0.25, "uncertain": 0, "colour": "#332288"},
                               {"label": "Residential", "count": 0, "share": 0.0, "uncertain": 0, "colour": "#ddcc77"}]
    assert areas == pytest.approx([6 * 0.907, 2 * 0.907, 0.0], rel=0.01)
    # Only the failure at y 12543..12544 lies in the bbox.
    assert data["failed"] == {"count": 2, "top_reasons": [{"reason": "truncated", "count": 2}]}
    assert [(m["hash"], m["tiles"], m["selected"]) for m in data["models"]] == [(model_hash(), 8, True)]


def test_summary_without_arguments_shows_the_latest_classify_job(cli_db: str) -> None:
    job, training = seed(cli_db)
    assert training > job
    code, out, _ = invoke("summary", "--json")
    assert code == 0 and json.loads(out)["job"] == job


@pytest.mark.parametrize(("args", "message"), [
    (["summary"], "Error: there are no classify jobs yet: name a region with --bbox W,S,E,N --zoom Z"),
    (["summary", "--bbox", LISBON], "Error: --bbox needs --zoom: the zoom whose tiles to read (0..24)"),
    (["summary", "--bbox", "1,2,3", "--zoom", "3"], "Error: invalid bbox '1,2,3': expected W,S,E,N in degrees"),
    (["summary", "4"], "Error: job 4 does not exist (job ids run 1..0)"),
])
def test_summary_bad_input(cli_db: str, args: list[str], message: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith(message)
