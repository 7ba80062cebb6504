"""Safe by default: loopback unless a token is set, the token as a bearer header, a page cookie or a ?token=
parameter, CORS only when asked for, and the command line's one-line refusals."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from api.auth import COOKIE, cookie_value
from api.config import ServeConfig, check_exposure, is_loopback
from core.errors import TileclassError
from producer.cli import app as cli
from tests.api.conftest import client_for
from tests.api.support import BASE, ZOOM, Region

TOKEN = "correct-horse-battery-staple"


def test_without_the_token_every_route_but_health_and_login_is_401(sqlite_region: Region) -> None:
    with client_for(ServeConfig(token=TOKEN)) as client:
        for path in ("/api/jobs", f"/api/tiles/{ZOOM}/{BASE[0]}/{BASE[1]}", "/docs", "/openapi.json",
                     f"/overlay/{sqlite_region.model_hash}/{ZOOM}/{BASE[0]}/{BASE[1]}.png",
                     f"/imagery/{sqlite_region.job_id}/{ZOOM}/{BASE[0]}/{BASE[1]}", "/static/app.js"):
            refused = client.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert TOKEN not in refused.text
        wrong = client.get("/api/jobs", headers={"Authorization": "Bearer not-it"})
        assert wrong.status_code == 401
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}


def test_a_bearer_header_or_a_token_parameter_lets_a_request_through(sqlite_region: Region) -> None:
    with client_for(ServeConfig(token=TOKEN)) as client:
        assert client.get("/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        tile = f"/overlay/{sqlite_region.model_hash}/{ZOOM}/{BASE[0]}/{BASE[1]}.png"
        assert client.get(tile, params={"token": TOKEN}).status_code == 200
        assert client.get(tile, params={"token": TOKEN + "x"}).status_code == 401


def test_the_page_asks_for_the_token_and_keeps_it_in_a_cookie_not_the_url(sqlite_region: Region) -> None:
    with client_for(ServeConfig(token=TOKEN)) as client:
        login = client.get("/", headers={"Accept": "text/html"})
        assert login.status_code == 401 and '<form method="post" action="/login">' in login.text
        visit = client.get(f"/?job={sqlite_region.job_id}&token={TOKEN}", headers={"Accept": "text/html"},
                           follow_redirects=False)
        assert visit.status_code == 303 and visit.headers["location"] == f"/?job={sqlite_region.job_id}"
        cookie = visit.headers["set-cookie"]
        assert f"{COOKIE}={cookie_value(TOKEN)}" in cookie and TOKEN not in cookie
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        page = client.get(f"/?job={sqlite_region.job_id}", headers={"Accept": "text/html"})  # the cookie is kept
        assert page.status_code == 200 and "leaflet-1.9.4/leaflet.js" in page.text
        assert client.get(f"/imagery/{sqlite_region.job_id}/{ZOOM}/{BASE[0]}/{BASE[1]}").status_code == 200


def test_the_login_form_sets_the_cookie_only_for_the_right_token_and_stays_on_this_site(
        sqlite_region: Region) -> None:
    with client_for(ServeConfig(token=TOKEN)) as client:
        wrong = client.post("/login", data={"token": "guess", "next": "/"}, follow_redirects=False)
        assert wrong.status_code == 401 and "not this server&#x27;s token" in wrong.text
        assert "set-cookie" not in wrong.headers
        right = client.post("/login", data={"token": TOKEN, "next": "//evil.example/x"}, follow_redirects=False)
        assert right.status_code == 303 and right.headers["location"] == "/"
        assert client.get("/api/jobs").status_code == 200  # with the cookie


def test_cors_is_off_unless_an_origin_is_given(sqlite_region: Region) -> None:
    origin = "https://maps.example.org"
    with client_for() as closed:
        answer = closed.get("/api/jobs", headers={"Origin": origin})
        assert "access-control-allow-origin" not in answer.headers
    with client_for(ServeConfig(cors_origins=(origin,), token=TOKEN)) as open_to_one:
        preflight = open_to_one.options("/api/jobs", headers={
            "Origin": origin, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin
        answer = open_to_one.get("/api/jobs", headers={"Origin": origin, "Authorization": f"Bearer {TOKEN}"})
        assert answer.headers["access-control-allow-origin"] == origin
        other = open_to_one.get("/api/jobs", headers={"Origin": "https://evil.example",
                                                       "Authorization": f"Bearer {TOKEN}"})
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True),
                                                 ("localhost", True), ("0.0.0.0", False), ("10.1.2.3", False),
                                                 ("::", False), ("tiles.example.org", False)])
def test_only_loopback_is_served_without_a_token(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        check_exposure(host, ServeConfig(), insecure_no_token=False)
    else:
        with pytest.raises(TileclassError, match="set TILECLASS_API_TOKEN"):
            check_exposure(host, ServeConfig(), insecure_no_token=False)
        check_exposure(host, ServeConfig(token=TOKEN), insecure_no_token=False)
        check_exposure(host, ServeConfig(), insecure_no_token=True)


@pytest.mark.parametrize(("name", "is_token"), [("token", True), ("tok%65n", True), ("%74%6F%6B%65%6E", True),
                                                  ("TOKEN", False), ("tok%2565n", False), ("tok+en", False)])
def test_the_gate_reads_as_the_token_exactly_the_parameters_the_access_log_masks(sqlite_region: Region, name: str,
                                                                                 is_token: bool) -> None:
    from api.server import redact

    with client_for(ServeConfig(token=TOKEN)) as client:
        answer = client.get(f"/api/jobs?limit=5&{name}={TOKEN}")
    assert answer.status_code == (200 if is_token else 401)
    logged = redact(f"/api/jobs?limit=5&{name}={TOKEN}")
    assert logged == (f"/api/jobs?limit=5&{name}=***" if is_token else f"/api/jobs?limit=5&{name}={TOKEN}")


def test_a_token_shorter_than_16_characters_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import get_settings

    for host in ("0.0.0.0", "127.0.0.1"):
        with pytest.raises(TileclassError, match="TILECLASS_API_TOKEN has only 15 of the 16 characters"):
            check_exposure(host, ServeConfig(token="x" * 15), insecure_no_token=False)
    check_exposure("0.0.0.0", ServeConfig(token="x" * 16), insecure_no_token=False)
    monkeypatch.setenv("TILECLASS_API_TOKEN", "x")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "8765"])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "Error: TILECLASS_API_TOKEN has only 1 of the 16 characters a token needs to resist guessing: make one with "
        "`openssl rand -hex 24`"]


def test_serve_refuses_a_public_address_without_a_token_in_one_line() -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "8765"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: serving on 0.0.0.0 would let anyone on the network read the results: set TILECLASS_API_TOKEN "
        "(requests then need it), serve on 127.0.0.1, or pass --insecure-no-token"]
    bad_level = CliRunner().invoke(cli, ["serve", "--log-level", "loud"])
    assert bad_level.exit_code == 2 and "choose critical, error, warning, info, debug" in bad_level.output
