"""A real uvicorn process (``tileclass serve``) on a free loopback port: it answers over the network, needs its
token, never writes the token to its access log, and stops cleanly."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.api.server_process import running_server
from tests.api.support import BASE, SIDE, ZOOM, Region

pytestmark = pytest.mark.integration
TOKEN = "s3cret-token-for-the-log-test"


def test_a_real_server_answers_with_its_token_and_keeps_the_token_out_of_its_log(
        sqlite_region: Region, sqlite_url: str, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with running_server(sqlite_url, log, env={"TILECLASS_API_TOKEN": TOKEN}) as server:
        assert httpx.get(f"{server.url}/api/jobs").status_code == 401
        jobs = httpx.get(f"{server.url}/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert jobs.status_code == 200 and jobs.json()[0]["job_id"] == sqlite_region.job_id
        tile = httpx.get(f"{server.url}/overlay/{sqlite_region.model_hash}/{ZOOM}/{BASE[0]}/{BASE[1]}.png",
                         params={"token": TOKEN})
        assert tile.status_code == 200 and tile.headers["content-type"] == "image/png"
        assert "server" not in tile.headers  # no software banner
        tilejson = httpx.get(f"{server.url}/overlay/{sqlite_region.model_hash}/tilejson.json",
                             params={"token": TOKEN}).json()
        template = tilejson["tiles"][0]
        assert template.startswith(server.url) and f"token={TOKEN}" in template
        from_template = httpx.get(template.format(z=ZOOM, x=BASE[0], y=BASE[1]))
        assert from_template.status_code == 200 and from_template.content == tile.content
    output = log.read_text()
    assert "tileclass serving http://127.0.0.1:" in output
    assert f"/overlay/{sqlite_region.model_hash}/{ZOOM}/{BASE[0]}/{BASE[1]}.png?token=***" in output
    assert TOKEN not in output


def test_gdal_reads_a_bbox_through_vsicurl_streaming_and_the_plain_url_and_head_answers(
        sqlite_region: Region, sqlite_url: str, tmp_path: Path) -> None:
    import pyogrio

    log = tmp_path / "serve.log"
    with running_server(sqlite_url, log, env={"TILECLASS_API_TOKEN": TOKEN}) as server:
        url = f"{server.url}/api/bbox?bbox={sqlite_region.bbox}&zoom={ZOOM}&tok%65n={TOKEN}"
        head, got = httpx.head(url), httpx.get(url)
        assert (head.status_code, head.content) == (200, b"")  # GDAL's /vsicurl/ asks HEAD first: it was 405
        assert head.headers["content-type"] == got.headers["content-type"] == "application/geo+json"
        assert head.headers["content-disposition"] == got.headers["content-disposition"]
        assert "content-length" not in got.headers  # streamed: any size, no length (so not plain /vsicurl/)
        for form in (f"/vsicurl_streaming/{url}", f"GeoJSON:{url}"):  # the README's GIS recipe
            meta, _, geometry, fields = pyogrio.raw.read(form)
            labels = dict(zip(meta["fields"], fields, strict=True))["label"]
            assert len(geometry) == SIDE * SIDE - 3 and sorted(set(labels)) == ["Forest", "Residential", "River"]
    output = log.read_text()
    assert "HEAD /api/bbox?" in output and "tok%65n=***" in output
    assert TOKEN not in output  # the encoded name authenticated, and was masked like token= is


def test_several_server_processes_share_the_port_and_the_settings(sqlite_region: Region, sqlite_url: str,
                                                                  tmp_path: Path) -> None:
    origin = "https://maps.example.org"
    with running_server(sqlite_url, tmp_path / "serve.log", env={"TILECLASS_API_TOKEN": TOKEN},
                        args=("--workers", "2", "--cors-origin", origin)) as server:
        for _ in range(6):
            answer = httpx.get(f"{server.url}/api/tiles/{ZOOM}/{BASE[0]}/{BASE[1]}",
                               headers={"Authorization": f"Bearer {TOKEN}", "Origin": origin})
            assert answer.status_code == 200 and answer.json()["label"] == "Forest"
            assert answer.headers["access-control-allow-origin"] == origin
        assert httpx.get(f"{server.url}/api/jobs").status_code == 401
    output = server.output()
    assert output.count("Started server process") == 2, output
