"""``tileclass summary --groups NAME`` and ``/api/summary?groups=NAME`` (issue 29, part 2): tiles, shares,
uncertain answers and km² per group, each the sum over its classes; tiles known only by a path have no area; a
grouping of another model is a one-line error (a 400)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.config import ServeConfig
from api.main import create_app
from core.class_groups import add_grouping
from core.db import session_scope
from core.jobs import create_job
from core.results import record_results
from core.settings import get_settings
from core.tile_area import tile_area_km2
from tests.factories import add_model, model_hash, scored
from tests.producer.conftest import cli

# Zoom 12 tiles from the equator to 60° N: their areas differ by row, so a group's km² is not tiles x one area.
TILES = [(12, 2048 + i, 2048 - 40 * i, label, confidence)
         for i, (label, confidence) in enumerate([("Forest", 0.9), ("River", 0.5), ("Residential", 0.9),
                                                  ("Forest", 0.4), ("River", 0.9), ("Forest", 0.9)])]
GROUPS = {"wet": ["River"], "green": ["Forest"]}  # Residential: "other"


@pytest.fixture
def job(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", database_url)
    get_settings.cache_clear()
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(GROUPS))
    with session_scope() as session:
        digest = add_model(session, "grouped")
        add_model(session, "stranger")
        job_id = create_job(session, model_hash=digest).id
        record_results(session, model_hash=digest, job_id=job_id, source_name="tiles", uncertain_below=0.6,
                       results=[scored(z, x, y, label, confidence) for z, x, y, label, confidence in TILES])
        add_grouping(session, name="cover", model_ref=digest, path=path)
        add_grouping(session, name="theirs", model_ref=model_hash("stranger"), path=path)
    return job_id


def expected() -> dict[str, tuple[int, float]]:
    """Per group, its tiles and their summed exact areas, worked out from the tiles themselves."""
    group_of = {"River": "wet", "Forest": "green", "Residential": "other"}
    sums: dict[str, tuple[int, float]] = {}
    for z, x, y, label, _ in TILES:
        tiles, area = sums.get(group_of[label], (0, 0.0))
        sums[group_of[label]] = (tiles + 1, area + tile_area_km2(z, x, y))
    return sums


def test_summary_counts_tiles_and_km2_per_group(job: int) -> None:
    result = cli("summary", str(job), "--groups", "cover", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["grouping"] == "cover"
    groups = {g["group"]: g for g in document["groups"]}
    assert [g["group"] for g in document["groups"]] == ["wet", "green", "other"]
    for group, (tiles, area) in expected().items():
        assert groups[group]["count"] == tiles
        assert groups[group]["area_km2"] == pytest.approx(area, rel=1e-12)
    assert groups["green"]["uncertain"] == 1 and groups["wet"]["uncertain"] == 1
    assert sum(g["share"] for g in document["groups"]) == pytest.approx(1.0)
    # The equal tile counts of "wet" and "other" hide different areas: the tiles lie at different latitudes.
    assert groups["wet"]["area_km2"] != pytest.approx(2 * groups["other"]["area_km2"], rel=1e-3)
    text = cli("summary", str(job), "--groups", "cover").stdout
    assert "by group (cover):" in text and any(line.split()[:2] == ["green", "3"] for line in text.splitlines())


def test_the_api_summary_counts_per_group_and_refuses_another_models_grouping(job: int) -> None:
    with TestClient(create_app(ServeConfig())) as client:
        answer = client.get("/api/summary", params={"job": job, "groups": "cover"})
        assert answer.status_code == 200, answer.text
        groups = {g["group"]: (g["count"], g["area_km2"]) for g in answer.json()["groups"]}
        assert groups == {group: (tiles, pytest.approx(area)) for group, (tiles, area) in expected().items()}
        assert client.get("/api/summary", params={"job": job}).json().get("groups") is None
        other = client.get("/api/summary", params={"job": job, "groups": "theirs"})
        assert other.status_code == 400 and other.json()["detail"].startswith("grouping 'theirs' is for model")
    refused = cli("summary", str(job), "--groups", "theirs")
    assert refused.exit_code == 2 and refused.stderr.startswith("Error: grouping 'theirs' is for model ")
