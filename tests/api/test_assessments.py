"""The assessment sample's API (issue 28): ``GET /api/assessments/{job}`` gives the sampled tiles in labelling order
with their imagery and never their map class, and ``POST /api/assessments/{job}/labels`` records reference labels
in the table ``tileclass assess label`` writes, all or nothing, behind the write authentication of
``POST /api/corrections``; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from api.auth import CSRF_HEADER
from api.config import ServeConfig
from api.routes.assessments import AssessmentSample
from core.assessment.store import draw_sample, labelled_units, sample_tiles
from core.db import session_scope
from core.schema import AssessmentUnit
from producer.cli import app as cli
from tests.api.conftest import client_for
from tests.api.support import Region, label_at
from tests.api.test_review import RUN_TOKEN, signed_in

PER_CLASS = 3
TILE_FIELDS = {"tile", "z", "x", "y", "position", "bounds", "imagery", "reference"}


@pytest.fixture
def sampled(region: Region) -> Region:
    """The region's job with a sample of 3 tiles from each of its 3 map classes."""
    with session_scope() as session:
        draw_sample(session, region.job_id, per_class=PER_CLASS, seed=11)
    return region


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {RUN_TOKEN}"}


def sample(client: TestClient, job: int) -> dict[str, Any]:
    answer = client.get(f"/api/assessments/{job}")
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def map_class(tile: str) -> str:
    _, x, y = (int(part) for part in tile.split("/"))
    found = label_at(x, y)
    assert found is not None  # the sample is drawn from classified tiles only
    return found


def stored(job: int) -> list[tuple[str, str | None, str | None]]:
    with session_scope() as session:
        rows = session.execute(select(AssessmentUnit.z, AssessmentUnit.x, AssessmentUnit.y, AssessmentUnit.reference,
                                      AssessmentUnit.author).order_by(AssessmentUnit.position))
        return [(f"{z}/{x}/{y}", reference, author) for z, x, y, reference, author in rows]


def test_the_sample_comes_in_labelling_order_with_its_imagery_and_never_its_map_class(sampled: Region) -> None:
    with client_for(ServeConfig(run_token=RUN_TOKEN)) as client:
        document = sample(client, sampled.job_id)  # a read: open on loopback
        with session_scope() as session:
            expected = sample_tiles(session, sampled.job_id)
        assert [t["tile"] for t in document["tiles"]] == [f"{t.z}/{t.x}/{t.y}" for t in expected]
        assert [t["position"] for t in document["tiles"]] == list(range(1, 3 * PER_CLASS + 1))
        assert {frozenset(t) for t in document["tiles"]} == {frozenset(TILE_FIELDS)}  # no label, no stratum
        assert all(t["reference"] is None for t in document["tiles"])
        assert AssessmentSample.model_validate(document).model_dump(mode="json") == document  # its declared shape
        assert document["classes"] == ["Forest", "River", "Residential"]  # the model's, in its order
        assert (document["labelled"], document["unlabelled"]) == (0, 3 * PER_CLASS)
        assert sorted(map_class(t["tile"]) for t in document["tiles"]) == sorted(
            ["Forest", "River", "Residential"] * PER_CLASS)  # stratified: 3 of each map class
        first = document["tiles"][0]
        assert first["imagery"] == f"http://testserver/imagery/{sampled.job_id}/{first['tile']}"
        assert client.get(first["imagery"]).status_code == 200  # the job's own imagery
        missing = client.get(f"/api/assessments/{sampled.job_id + 1}")
        assert missing.status_code == 404 and "\n" not in missing.json()["detail"]


def test_a_job_without_a_sample_is_404_saying_how_to_draw_one(region: Region) -> None:
    with client_for(ServeConfig(run_token=RUN_TOKEN)) as client:
        answer = client.get(f"/api/assessments/{region.job_id}")
        assert answer.status_code == 404
        assert f"tileclass assess sample {region.job_id}" in answer.json()["detail"]
        posted = client.post(f"/api/assessments/{region.job_id}/labels", headers=bearer(),
                             json={"labels": [{"tile": "17/70400/42992", "reference": "Forest"}]})
        assert posted.status_code == 404


def test_labels_need_the_write_token_or_the_pages_cookie_with_its_csrf_token(sampled: Region) -> None:
    with client_for(ServeConfig(run_token=RUN_TOKEN)) as client:
        tiles = sample(client, sampled.job_id)["tiles"]
        body = {"labels": [{"tile": tiles[0]["tile"], "reference": "river"}], "author": "ana"}
        url = f"/api/assessments/{sampled.job_id}/labels"
        refused = client.post(url, json=body)
        assert refused.status_code == 401 and "Authorization: Bearer" in refused.json()["detail"]
        assert client.post(f"{url}?token={RUN_TOKEN}", json=body).status_code == 401  # a URL's token: reads only
        csrf = signed_in(client, RUN_TOKEN)
        no_csrf = client.post(url, json=body)
        assert no_csrf.status_code == 403 and CSRF_HEADER in no_csrf.json()["detail"]
        assert [reference for _, reference, _ in stored(sampled.job_id)] == [None] * len(tiles)
        done = client.post(url, json=body, headers={CSRF_HEADER: csrf})
        assert done.status_code == 200, done.text
        assert done.json() == {"recorded": 1, "labelled": 1, "unlabelled": len(tiles) - 1}
        by_script = client.post(url, headers=bearer(), json={
            "labels": [{"tile": tiles[1]["tile"], "reference": "Forest"}]})  # author: "web" by default
        assert by_script.status_code == 200 and by_script.json()["labelled"] == 2
    rows = stored(sampled.job_id)
    assert rows[0] == (tiles[0]["tile"], "River", "ana")  # stored in the model's spelling
    assert rows[1] == (tiles[1]["tile"], "Forest", "web")


def test_the_labels_land_where_assess_label_puts_them_and_the_report_reads_them(sampled: Region) -> None:
    with client_for(ServeConfig(run_token=RUN_TOKEN)) as client:
        tiles = sample(client, sampled.job_id)["tiles"]
        truth = {t["tile"]: map_class(t["tile"]) for t in tiles}  # labelled as mapped: a perfect map
        truth[tiles[0]["tile"]] = "Forest" if truth[tiles[0]["tile"]] != "Forest" else "River"  # but one error
        url = f"/api/assessments/{sampled.job_id}/labels"
        answer = client.post(url, headers=bearer(), json={
            "labels": [{"tile": tile, "reference": reference} for tile, reference in truth.items()], "author": "ana"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"recorded": len(tiles), "labelled": len(tiles), "unlabelled": 0}
        again = client.post(url, headers=bearer(), json={"labels": [{"tile": tiles[1]["tile"],
                                                                     "reference": truth[tiles[1]["tile"]]}]})
        assert again.json()["recorded"] == 0  # the label it has: nothing changes
        document = sample(client, sampled.job_id)
        assert {t["tile"]: t["reference"] for t in document["tiles"]} == truth
    with session_scope() as session:
        units, _, unlabelled = labelled_units(session, sampled.job_id)
    assert unlabelled == 0
    assert sorted((u.reference, u.stratum) for u in units) == sorted((truth[t], map_class(t)) for t in truth)
    report = CliRunner().invoke(cli, ["assess", "report", str(sampled.job_id), "--json"])
    assert report.exit_code == 0, report.output
    overall = report.stdout[report.stdout.index("{"):]
    assert '"overall"' in overall and '"Residential"' in overall


@pytest.mark.parametrize(("labels", "problem"), [
    ([{"tile": "FIRST", "reference": "Forest"}, {"tile": "SECOND", "reference": "Lava"}],
     "labels[1]: 'Lava' is not a class of job"),
    ([{"tile": "FIRST", "reference": "Forest"}, {"tile": "17/1/1", "reference": "Forest"}],
     "labels[1]: tile 17/1/1 is not in job"),
    ([{"tile": "FIRST", "reference": "Forest"}, {"tile": "FIRST", "reference": "River"}],
     "labels[1]: tile FIRST is labelled twice (also labels[0])"),
    ([{"tile": "17/1", "reference": "Forest"}], "invalid tile '17/1'"),
    ([{"tile": "FIRST", "reference": "Riv\0er"}], "NUL bytes are not allowed"),
    ([], "labels: List should have at least 1 item"),
], ids=["unknown-class", "not-in-sample", "duplicate", "malformed-tile", "nul", "none"])
def test_a_bad_label_is_400_in_one_line_and_nothing_is_written(sampled: Region, labels: list[dict[str, str]],
                                                               problem: str) -> None:
    with client_for(ServeConfig(run_token=RUN_TOKEN)) as client:
        tiles = sample(client, sampled.job_id)["tiles"]
        named = {"FIRST": tiles[0]["tile"], "SECOND": tiles[1]["tile"]}
        body = [{**entry, "tile": named.get(entry["tile"], entry["tile"])} for entry in labels]
        answer = client.post(f"/api/assessments/{sampled.job_id}/labels", headers=bearer(), json={"labels": body})
        detail = answer.json()["detail"]
        assert answer.status_code == 400 and "\n" not in detail
        assert problem.replace("FIRST", tiles[0]["tile"]) in detail, detail
        if "class of job" in detail:
            assert detail.endswith("its classes are Forest, River, Residential")
        blank = client.post(f"/api/assessments/{sampled.job_id}/labels", headers=bearer(),
                            json={"labels": [{"tile": tiles[0]["tile"], "reference": "Forest"}], "author": " "})
        assert blank.status_code == 400 and blank.json()["detail"] == "author must not be empty"
    assert [reference for _, reference, _ in stored(sampled.job_id)] == [None] * len(tiles)


@pytest.mark.parametrize("job", [2**31, 2**63, 2**70])
def test_a_job_id_beyond_the_column_is_400_as_on_every_route_taking_one(sqlite_region: Region, job: int) -> None:
    line = {"detail": f"job {job} does not exist: job ids are 1..2147483647"}
    with client_for(ServeConfig(run_token=RUN_TOKEN)) as client:
        read = client.get(f"/api/assessments/{job}")
        written = client.post(f"/api/assessments/{job}/labels", headers=bearer(),
                              json={"labels": [{"tile": "17/70400/42992", "reference": "Forest"}]})
    assert (read.status_code, read.json()) == (400, line)
    assert (written.status_code, written.json()) == (400, line)
