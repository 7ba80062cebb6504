"""The review queue's API and the write it makes: ``GET /api/jobs/{id}/review`` (least confident first, tiles
corrected since their result left out, keyset pages) and ``POST /api/corrections`` (the code of ``tileclass
correct``), which always needs a token: 401 without one on loopback too, 403 for the page's cookie without its CSRF
token, a bearer header for scripts; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from api.auth import COOKIE, CSRF_HEADER, csrf_token
from api.config import ServeConfig
from core.corrections import record_corrections
from core.db import session_scope
from core.jobs import create_job
from core.queries import tile_corrections
from core.results import record_results
from core.schema import Model, TileCorrection, TileResult
from core.tiles import Tile
from producer.cli import app as cli
from tests.api.conftest import client_for
from tests.api.support import BASE, ZOOM, Region
from tests.factories import add_model, folder_source, scored

RUN_TOKEN = "this-runs-own-token-0123456789"
API_TOKEN = "correct-horse-battery-staple"
# (dx, confidence) of the review job's tiles, on the row y = BASE[1] + 1
CONFIDENCES = [(0, 0.55), (1, 0.31), (2, 0.9), (3, 0.42), (4, 0.42), (5, 0.77), (6, 0.2)]


def tile(dx: int) -> Tile:
    return Tile(ZOOM, BASE[0] + dx, BASE[1] + 1)


def a_correction(label: str = "river", **fields: str) -> dict[str, str]:
    return {"tile": str(tile(0)), "label": label, **fields}


def signed_in(client: TestClient, token: str) -> str:
    """Sign ``client`` in with the login URL ``serve`` prints; the CSRF token the page then reads."""
    login = client.get(f"/login?token={token}", follow_redirects=False)
    assert login.status_code == 303 and COOKIE in login.headers["set-cookie"]
    session = client.get("/api/session").json()
    assert session["signed_in"] is True
    return str(session["csrf_token"])


@pytest.fixture
def review_job(region: Region) -> tuple[Region, int, str]:
    """A job of another model over the region's second row, its answers at ``CONFIDENCES``: tile 6 (the least
    confident) was corrected before its result, tile 3 after it."""
    with session_scope() as session:
        model_hash = add_model(session, "reviewed")
        model = session.get(Model, model_hash)
        assert model is not None
        job = create_job(session, model_hash=model_hash, source=folder_source(region.root, name="city")).id
        record_corrections(session, model=model, labels=[(tile(6), "Forest")], author="ana")
        record_results(session, model_hash=model_hash, job_id=job, source_name="city",
                       results=[scored(*tile(dx).xyz(), "Forest", confidence) for dx, confidence in CONFIDENCES])
        before = session.scalars(select(TileResult.classified_at).where(TileResult.job_id == job)).first()
        assert before is not None
        older = session.scalars(select(TileCorrection).where(TileCorrection.x == tile(6).x)).one()
        older.created_at = before - timedelta(days=1)  # a correction of an earlier answer: the new one is queued
    with session_scope() as session:
        model = session.get(Model, model_hash)
        assert model is not None
        record_corrections(session, model=model, labels=[(tile(3), "River")], author="ana")
    return region, job, model_hash


def test_the_queue_is_the_least_confident_answers_first_without_the_ones_corrected_since(
        review_job: tuple[Region, int, str]) -> None:
    _, job, model_hash = review_job
    with client_for(ServeConfig(run_token=RUN_TOKEN)) as client:
        whole = client.get(f"/api/jobs/{job}/review").json()
        assert [answer["tile"] for answer in whole["answers"]] == [
            str(tile(dx)) for dx in (6, 1, 4, 0, 5, 2)]  # 3 corrected after its result; 6 only before it
        assert whole["next"] is None and whole["model"] == model_hash
        assert whole["classes"] == ["Forest", "River", "Residential"]
        first = whole["answers"][0]
        assert (first["label"], first["confidence"]) == ("Forest", 0.2)
        assert [(entry["label"], entry["probability"]) for entry in first["top"]] == [  # the model's top 3
            ("Residential", pytest.approx(0.4)), ("River", pytest.approx(0.4)), ("Forest", 0.2)]
        assert first["imagery"] == f"http://testserver/imagery/{job}/{ZOOM}/{tile(6).x}/{tile(6).y}"
        assert client.get(first["imagery"]).status_code == 200  # the job's own imagery
        west, south, east, north = tile(6).bounds()
        assert first["bounds"] == pytest.approx([west, south, east, north])

        pages, after = [], None
        while True:  # two at a time, each page after the last one's cursor
            page = client.get(f"/api/jobs/{job}/review", params={"limit": 2, **({"after": after} if after else {})})
            pages.append([answer["tile"] for answer in page.json()["answers"]])
            after = page.json()["next"]
            if after is None:
                break
        assert pages == [[str(tile(6)), str(tile(1))], [str(tile(4)), str(tile(0))], [str(tile(5)), str(tile(2))]]

        bad = client.get(f"/api/jobs/{job}/review", params={"after": "soon"})
        assert bad.status_code == 400 and bad.json()["detail"].startswith("after: not a review cursor")
        assert client.get("/api/jobs/999/review").status_code == 404


def test_a_write_needs_a_token_even_on_loopback_where_reads_need_none(region: Region) -> None:
    with client_for(ServeConfig(run_token=RUN_TOKEN)) as client:
        assert client.get(f"/api/jobs/{region.job_id}/review").status_code == 200  # reads: open on loopback
        refused = client.post("/api/corrections", json=a_correction())
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in refused.json()["detail"]
        wrong = client.post("/api/corrections", json=a_correction(), headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401
        in_url = client.post(f"/api/corrections?token={RUN_TOKEN}", json=a_correction())
        assert in_url.status_code == 401  # a token in a URL is for reads only
    with client_for(ServeConfig()) as no_token:  # an app nobody gave a write token: no writes at all
        assert no_token.post("/api/corrections", json=a_correction(),
                             headers={"Authorization": f"Bearer {RUN_TOKEN}"}).status_code == 401
    with session_scope() as session:
        assert tile_corrections(session, tile=tile(0)) == []


@pytest.mark.parametrize("configured", [ServeConfig(run_token=RUN_TOKEN), ServeConfig(token=API_TOKEN)],
                         ids=["run-token", "api-token"])
def test_the_pages_cookie_writes_only_with_its_csrf_token(sqlite_region: Region, configured: ServeConfig) -> None:
    token = configured.write_token
    assert token is not None
    with client_for(configured) as client:
        if configured.token is None:  # reads are open: the page asks, and is told it is signed out
            assert client.get("/api/session").json() == {"signed_in": False, "csrf_token": None, "login": "/login"}
        csrf = signed_in(client, token)
        assert csrf == csrf_token(token) and token not in csrf
        assert csrf_token("another-token-of-the-same-length") != csrf  # nobody without the token can make it
        missing = client.post("/api/corrections", json=a_correction())
        assert missing.status_code == 403 and CSRF_HEADER in missing.json()["detail"]
        forged_csrf = csrf[:-1] + "01"[csrf[-1] == "0"]  # one character off
        forged = client.post("/api/corrections", json=a_correction(), headers={CSRF_HEADER: forged_csrf})
        assert forged.status_code == 403
        with session_scope() as session:
            assert tile_corrections(session, tile=tile(0)) == []
        done = client.post("/api/corrections", json=a_correction(author="rita"), headers={CSRF_HEADER: csrf})
        assert done.status_code == 200, done.text
        assert (done.json()["label"], done.json()["author"], done.json()["recorded"]) == ("River", "rita", 1)


def test_a_bearer_write_is_recorded_as_tileclass_correct_records_it(region: Region) -> None:
    with client_for(ServeConfig(run_token=RUN_TOKEN)) as client:
        answer = client.post("/api/corrections", headers={"Authorization": f"Bearer {RUN_TOKEN}"},
                             json=a_correction("  river ", author="ana", model=region.model_hash))
    assert answer.status_code == 200, answer.text
    typed = CliRunner().invoke(cli, ["correct", str(tile(4)), "  river ", "--author", "ana", "--model",
                                     region.model_hash, "--json"])
    assert typed.exit_code == 0, typed.output
    assert answer.json() == {**json.loads(typed.stdout), "tile": str(tile(0))}  # the same document
    assert answer.json()["predicted"] == "Forest" and answer.json()["label"] == "River"
    with session_scope() as session:
        web, = tile_corrections(session, tile=tile(0))
        cli_made, = tile_corrections(session, tile=tile(4))
    assert (web.label, web.author, web.model_hash, web.origin) == ("River", "ana", region.model_hash, None)
    assert (web.label, web.author, web.model_hash, web.origin) == (cli_made.label, cli_made.author,
                                                                   cli_made.model_hash, cli_made.origin)


def test_a_label_the_model_does_not_know_is_400_in_one_line_naming_its_classes(sqlite_region: Region) -> None:
    with client_for(ServeConfig(run_token=RUN_TOKEN)) as client:
        bearer = {"Authorization": f"Bearer {RUN_TOKEN}"}
        answer = client.post("/api/corrections", headers=bearer, json=a_correction("Lava"))
        assert answer.status_code == 400
        detail = answer.json()["detail"]
        assert "\n" not in detail and "'Lava' is not a class of model" in detail
        assert "its classes are Forest, River, Residential" in detail
        for body, problem in ((a_correction(author=" "), "author must not be empty"),
                              ({"tile": "17/1", "label": "River"}, "invalid tile '17/1'"),
                              (a_correction("Riv\0er"), "NUL bytes are not allowed")):
            refused = client.post("/api/corrections", headers=bearer, json=body)
            assert refused.status_code == 400 and problem in refused.json()["detail"], refused.text
    with session_scope() as session:
        assert tile_corrections(session, tile=tile(0)) == []


def test_wrong_tokens_on_writes_are_throttled_as_on_reads_where_reads_need_none(sqlite_region: Region) -> None:
    with client_for(ServeConfig(run_token=RUN_TOKEN)) as client:
        guesses = [client.post("/api/corrections", json=a_correction(), headers={"Authorization": f"Bearer guess{n}"})
                   for n in range(12)]
        assert [answer.status_code for answer in guesses] == [401] * 11 + [429]  # 10 free; the 11th locks it out
        assert guesses[-1].headers["retry-after"] == "1"
        right = client.post("/api/corrections", json=a_correction(), headers={"Authorization": f"Bearer {RUN_TOKEN}"})
        assert right.status_code == 429  # the right token too while it lasts: no answer tells a guess apart
        assert client.get(f"/login?token={RUN_TOKEN}", follow_redirects=False).status_code == 429
        assert client.get("/api/jobs").status_code == 200  # reads on loopback need no token, so nothing to throttle
    with session_scope() as session:
        assert tile_corrections(session, tile=tile(0)) == []
