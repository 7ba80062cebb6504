"""The JSON API against a real database (SQLite and PostgreSQL): the same answers as the CLI, the same one-line
messages as HTTP 400 and 404, and streams for regions of any size."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.config import ServeConfig
from producer.cli import app as cli
from tests.api.conftest import client_for
from tests.api.support import BASE, EMPTY, FAILED, QUAD_HOLE, SIDE, ZOOM, Region, label_at


def cli_json(*args: str) -> object:
    result = CliRunner().invoke(cli, [*args])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_jobs_answer_what_status_json_prints(region: Region, client: TestClient) -> None:
    listed = client.get("/api/jobs").json()
    one = client.get(f"/api/jobs/{region.job_id}").json()
    printed = cli_json("status", str(region.job_id), "--json")
    assert isinstance(printed, dict)
    for document in (listed[0], one):
        assert {k: v for k, v in document.items() if k != "tiles_per_second"} == \
            {k: v for k, v in printed.items() if k != "tiles_per_second"}
    assert one["state"] == "completed" and (one["classified"], one["failed"], one["empty"]) == (SIDE * SIDE - 3, 2, 1)


def test_unknown_and_malformed_jobs_get_404_and_400_with_the_clis_line(region: Region, client: TestClient) -> None:
    missing = client.get("/api/jobs/999")
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"job 999 does not exist (job ids run 1..{region.job_id})"}
    malformed = client.get("/api/jobs/seven")
    assert malformed.status_code == 400 and "job_id" in malformed.json()["detail"] and "'seven'" in \
        malformed.json()["detail"]
    assert client.get("/api/jobs?limit=0").status_code == 400


def test_failures_stream_as_json_and_csv_with_a_reason_filter(region: Region, client: TestClient) -> None:
    failures = client.get(f"/api/jobs/{region.job_id}/failures").json()
    assert {(f["x"], f["y"]) for f in failures} == {FAILED, QUAD_HOLE}
    corrupt = client.get(f"/api/jobs/{region.job_id}/failures", params={"reason": "CORRUPT"}).json()
    assert [(f["x"], f["y"], f["reason"], f["attempts"]) for f in corrupt] == \
        [(*FAILED, "undecodable image (corrupt data)", 1)]
    table = client.get(f"/api/jobs/{region.job_id}/failures", params={"format": "csv"})
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert sorted(row["reason"] for row in rows) == ["no such file", "undecodable image (corrupt data)"]
    assert client.get("/api/jobs/999/failures").status_code == 404
    assert client.get(f"/api/jobs/{region.job_id}/failures", params={"format": "xml"}).status_code == 400


def test_models_list_and_show(region: Region, client: TestClient) -> None:
    listed = client.get("/api/models").json()
    assert [(m["hash"], m["results"]) for m in listed] == [(region.model_hash, SIDE * SIDE - 3)]
    shown = client.get(f"/api/models/{region.model_hash[:8]}").json()
    assert shown["class_names"] == ["Forest", "River", "Residential"]
    unknown = client.get("/api/models/ffffff00")
    assert unknown.status_code == 404 and "ffffff00" in unknown.json()["detail"]


@pytest.mark.parametrize("offset", [(0, 0), (1, 0), (2, 1), EMPTY, QUAD_HOLE])
def test_a_tile_answers_what_query_tile_json_prints(region: Region, client: TestClient,
                                                    offset: tuple[int, int]) -> None:
    x, y = offset if offset[0] > SIDE else (BASE[0] + offset[0], BASE[1] + offset[1])
    answer = client.get(f"/api/tiles/{ZOOM}/{x}/{y}")
    printed = cli_json("query", "tile", f"{ZOOM}/{x}/{y}", "--json")
    assert isinstance(printed, dict)
    body = answer.json()
    if (x, y) == QUAD_HOLE:  # neither classified nor empty: 404, and the same document beside the reason
        assert answer.status_code == 404
        hint = CliRunner().invoke(cli, ["query", "tile", f"{ZOOM}/{x}/{y}"]).stderr.removeprefix("hint: ").strip()
        assert body.pop("detail") == f"tile {ZOOM}/{x}/{y} is not classified by any model; {hint}"  # as the CLI's
        assert hint.startswith(f"{ZOOM}/{x}/{y} lies within the results of any model at zoom {ZOOM}: x "
                               f"{BASE[0]}..{BASE[0] + SIDE - 1}, y {BASE[1]}..{BASE[1] + SIDE - 1} (lon ")
        assert body["results_extent"] == [{"zoom": ZOOM, "x": [BASE[0], BASE[0] + SIDE - 1],
                                     "y": [BASE[1], BASE[1] + SIDE - 1], "bbox": region.bbox.as_list()}]
    else:
        assert answer.status_code == 200
    assert body == printed
    assert body.get("label") == label_at(x, y)


def test_a_point_is_the_tile_under_it(region: Region, client: TestClient) -> None:
    import mercantile

    x, y = BASE[0] + 1, BASE[1]
    west, south, east, north = mercantile.bounds(x, y, ZOOM)
    answer = client.get("/api/point", params={"lon": (west + east) / 2, "lat": (south + north) / 2, "zoom": ZOOM,
                                              "model": region.model_hash})
    assert answer.status_code == 200
    assert (answer.json()["x"], answer.json()["y"], answer.json()["label"]) == (x, y, "River")
    assert answer.json()["top"][0]["label"] == "River"
    assert client.get("/api/point", params={"lon": 200, "lat": 0, "zoom": ZOOM}).status_code == 400
    swapped = client.get("/api/point", params={"lon": (south + north) / 2, "lat": (west + east) / 2, "zoom": ZOOM})
    assert swapped.status_code == 404
    assert swapped.json()["detail"].endswith(f"; lon and lat swapped? the point (lon {(west + east) / 2:g}, lat "
                                             f"{(south + north) / 2:g}) is inside")
    assert client.get("/api/point", params={"lon": 0, "lat": 0, "zoom": ZOOM, "model": "nosuchmodel"}) \
        .status_code == 404


def test_bad_tiles_and_models_get_one_line_400_and_404(region: Region, client: TestClient) -> None:
    out_of_range = client.get(f"/api/tiles/{ZOOM}/{1 << ZOOM}/0")
    assert out_of_range.status_code == 400
    assert out_of_range.json()["detail"] == (f"tile {ZOOM}/{1 << ZOOM}/0 is out of range: x and y must be "
                                              f"0..{(1 << ZOOM) - 1} at zoom {ZOOM}")
    assert client.get(f"/api/tiles/{ZOOM}/{BASE[0]}/{BASE[1]}", params={"model": "abcdef99"}).status_code == 404


def test_bbox_streams_geojson_and_csv_of_the_whole_region(region: Region, client: TestClient) -> None:
    box = str(region.bbox)
    geojson = client.get("/api/bbox", params={"bbox": box, "zoom": ZOOM})
    assert geojson.headers["content-type"] == "application/geo+json"
    assert "attachment" in geojson.headers["content-disposition"]
    features = geojson.json()["features"]
    assert len(features) == SIDE * SIDE - 3
    assert {(f["properties"]["x"], f["properties"]["y"]): f["properties"]["label"] for f in features} == \
        {(x, y): label_at(x, y) for x in range(BASE[0], BASE[0] + SIDE) for y in range(BASE[1], BASE[1] + SIDE)
         if label_at(x, y) is not None}
    rivers = client.get("/api/bbox", params={"bbox": box, "zoom": ZOOM, "label": "River", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(rivers.text)))
    assert len(rows) == 7 and {row["label"] for row in rows} == {"River"}  # 8 in the block, one a hole
    assert {"p_Forest", "p_River", "p_Residential"} <= set(rows[0])
    with_empty = client.get("/api/bbox", params={"bbox": box, "zoom": ZOOM, "include_empty": "true",
                                                 "format": "json"}).json()
    assert [(a["x"], a["y"]) for a in with_empty if a.get("empty")] == [EMPTY]


def test_head_answers_every_get_route_with_its_headers_and_no_body(sqlite_region: Region,
                                                                   client: TestClient) -> None:
    streamed = f"/api/bbox?bbox={sqlite_region.bbox}&zoom={ZOOM}"
    for path in (streamed, "/api/jobs", f"/imagery/{sqlite_region.job_id}/{ZOOM}/{BASE[0]}/{BASE[1]}", "/healthz",
                 "/", "/static/app.js"):
        got, head = client.get(path), client.head(path)
        assert (head.status_code, head.content) == (200, b""), path  # GDAL's /vsicurl/ asks HEAD first: not 405
        for header in ("content-type", "content-disposition", "content-length"):
            assert head.headers.get(header) == got.headers.get(header), (path, header)
    assert "content-length" not in client.head(streamed).headers  # a stream of any size: its GET has none either
    assert client.head("/api/jobs/999").status_code == 404
    assert client.head(f"/imagery/{sqlite_region.job_id}/{ZOOM}/{BASE[0] - 50}/{BASE[1]}").status_code == 204


def test_bbox_json_is_refused_above_the_limit_naming_it_and_the_streaming_formats(region: Region) -> None:
    with client_for(ServeConfig(json_limit=10)) as limited:
        refused = limited.get("/api/bbox", params={"bbox": str(region.bbox), "zoom": ZOOM, "format": "json"})
        assert refused.status_code == 400
        assert refused.json()["detail"] == (
            f"the region holds {SIDE * SIDE - 3} tiles, more than the 10 that format=json answers in one document "
            "(TILECLASS_API_JSON_LIMIT): use format=geojson or format=csv, which stream any size")
        narrow = limited.get("/api/bbox", params={"bbox": str(region.bbox), "zoom": ZOOM, "format": "json",
                                                  "label": "Residential"})
        assert narrow.status_code == 200 and len(narrow.json()) == 4
        assert limited.get("/api/bbox", params={"bbox": str(region.bbox), "zoom": ZOOM}).status_code == 200


def test_bbox_bad_input(region: Region, client: TestClient) -> None:
    box = str(region.bbox)
    cases = {
        ("1,2,3", ZOOM, "Forest", "geojson"): (400, "invalid bbox '1,2,3': expected W,S,E,N"),
        (box, 30, "Forest", "geojson"): (400, "zoom: "),
        (box, ZOOM, "Lake", "geojson"): (404, "unknown label 'Lake' for model"),
        (box, ZOOM, "Forest", "shapefile"): (400, "format: "),
    }
    for (bbox, zoom, label, fmt), (status, message) in cases.items():
        answer = client.get("/api/bbox", params={"bbox": bbox, "zoom": zoom, "label": label, "format": fmt})
        assert answer.status_code == status, (bbox, zoom, label, fmt)
        assert message in answer.json()["detail"]


def test_summary_of_a_job_and_of_a_region_with_class_colours(region: Region, client: TestClient) -> None:
    by_job = client.get("/api/summary", params={"job": region.job_id}).json()
    printed = cli_json("summary", str(region.job_id), "--json")
    assert by_job == printed
    counts = {c["label"]: (c["count"], c["colour"]) for c in by_job["classes"]}
    assert counts == {"Forest": (50, "#cc6677"), "River": (7, "#332288"), "Residential": (4, "#ddcc77")}
    assert by_job["failed"]["count"] == 2 and by_job["empty"]["count"] == 1
    by_region = client.get("/api/summary", params={"bbox": str(region.bbox), "zoom": ZOOM}).json()
    assert by_region["classified"] == SIDE * SIDE - 3
    neither = client.get("/api/summary")
    assert neither.status_code == 400 and neither.json()["detail"].startswith("name a job or a region")


def test_the_layers_of_a_job_name_its_zoom_extent_colours_and_tile_templates(region: Region,
                                                                           client: TestClient) -> None:
    layers = client.get(f"/api/jobs/{region.job_id}/layers").json()
    assert layers["zoom"] == ZOOM and layers["model"] == region.model_hash
    assert layers["bounds"] == pytest.approx(region.bbox.as_list())
    assert [(c["label"], c["count"]) for c in layers["classes"]] == [("Forest", 50), ("River", 7),
                                                                       ("Residential", 4)]
    assert layers["imagery"] == f"http://testserver/imagery/{region.job_id}/{{z}}/{{x}}/{{y}}"
    overlay = layers["overlay"].replace("http://testserver", "").format(z=ZOOM, x=BASE[0], y=BASE[1])
    assert client.get(overlay).headers["content-type"] == "image/png"


def test_the_basemap_is_off_unless_configured_and_must_be_a_tile_template(sqlite_region: Region,
                                                                           client: TestClient) -> None:
    from core.errors import SettingsError
    from core.settings import Settings, load_settings

    assert client.get(f"/api/jobs/{sqlite_region.job_id}/layers").json()["basemap"] is None
    osm = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"  # never fetched: the browser would fetch it, not the test
    with client_for(ServeConfig.from_settings(Settings(basemap={"url": osm}))) as with_basemap:
        layers = with_basemap.get(f"/api/jobs/{sqlite_region.job_id}/layers").json()
        assert layers["basemap"] == {"url": osm, "attribution": "tile.openstreetmap.org"}
    for bad in ("file:///etc/{z}/{x}/{y}", "https://tiles.example.org/?key=s3cret", "javascript:{z}{x}{y}"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TILECLASS_BASEMAP_URL", bad)
            with pytest.raises(SettingsError) as refused:
                load_settings()
        assert str(refused.value) == ("TILECLASS_BASEMAP_URL: must be an http(s) tile URL template with {z}, {x} "
                                      "and {y}") and "s3cret" not in str(refused.value)


def test_an_unreachable_database_is_503_without_its_password(sqlite_region: Region,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import get_settings

    monkeypatch.setenv("TILECLASS_DATABASE_URL", "postgresql+psycopg://tc:s3cret-pw@127.0.0.1:1/none")
    get_settings.cache_clear()
    with client_for() as down:
        answer = down.get("/api/jobs")
        assert answer.status_code == 503
        assert "cannot reach the results database" in answer.json()["detail"]
        assert "s3cret-pw" not in answer.text
        assert down.get("/healthz").json() == {"status": "ok"}
        assert down.get("/readyz").status_code == 503


def test_the_api_docs_and_the_map_load_nothing_from_elsewhere(client: TestClient) -> None:
    import re

    for page in ("/docs", "/"):
        html = client.get(page).text
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", html), page  # no CDN, no other host
        for asset in re.findall(r"(?:src|href)=[\"'](/static/[^\"']+)", html):
            assert client.get(asset).status_code == 200, asset
    assert "swagger-ui-bundle.js" in client.get("/docs").text
    spec = client.get("/openapi.json").json()
    assert spec["paths"]["/healthz"]["get"]["tags"] == spec["paths"]["/readyz"]["get"]["tags"] == ["health"]
    assert {"/api/jobs", "/api/jobs/{job_id}/failures", "/api/models", "/api/tiles/{z}/{x}/{y}", "/api/point",
            "/api/bbox", "/api/summary", "/overlay/{model}/{z}/{x}/{y}.{format}", "/overlay/{model}/tilejson.json"} \
        <= set(spec["paths"])


def test_a_job_without_a_region_is_shown_where_its_tiles_are(sqlite_region: Region, sqlite_url: str,
                                                              client: TestClient) -> None:
    from core.db import session_scope
    from core.jobs import create_job
    from core.results import record_results
    from tests.factories import folder_source, scored

    with session_scope(sqlite_url) as session:  # a whole folder, enqueued without --zoom or --bbox
        job = create_job(session, model_hash=sqlite_region.model_hash, source=folder_source(sqlite_region.root))
        record_results(session, model_hash=sqlite_region.model_hash, job_id=job.id, source_name="tiles",
                       results=[scored(ZOOM, BASE[0] + dx, BASE[1] + dy, "River") for dx in range(2)
                                for dy in range(3)])
        job_id = job.id
    layers = client.get(f"/api/jobs/{job_id}/layers").json()
    assert layers["zoom"] == ZOOM and layers["classified"] == 6
    import mercantile

    west, _, _, north = mercantile.bounds(BASE[0], BASE[1], ZOOM)
    _, south, east, _ = mercantile.bounds(BASE[0] + 1, BASE[1] + 2, ZOOM)
    assert layers["bounds"] == pytest.approx([west, south, east, north])
    assert [(c["label"], c["count"]) for c in layers["classes"]] == [("Forest", 0), ("River", 6), ("Residential", 0)]
