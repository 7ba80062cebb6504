"""/openapi.json, what /docs shows, declares the JSON document of every route (``api.schemas``), and every answer is
that document, the streamed ones included; the overlay's pictures and vector tiles are one route with a format
suffix, as TiTiler's tile factory has them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from tests.api.support import BASE, EMPTY, QUAD_HOLE, ZOOM, Region

JSON_ROUTES = {
    "GET /healthz", "GET /readyz", "GET /api/session", "GET /api/jobs", "GET /api/jobs/{job_id}",
    "GET /api/jobs/{job_id}/failures", "GET /api/jobs/{job_id}/layers", "GET /api/jobs/{job_id}/review",
    "POST /api/corrections", "GET /api/models", "GET /api/models/{model}", "GET /api/tiles/{z}/{x}/{y}",
    "GET /api/assessments/{job_id}", "POST /api/assessments/{job_id}/labels",
    "GET /api/point", "GET /api/bbox", "GET /api/summary", "GET /overlay/{model}/tilejson.json",
    "GET /api/diffs/{job_a}/{job_b}", "GET /api/diffs/{job_a}/{job_b}/changes",
}


def declared(schema: dict[str, Any], spec: dict[str, Any]) -> bool:
    """Whether ``schema`` names its fields: a component with properties, an array of them, or a choice of them (a
    bare object, ``{}`` or a title alone, as ``dict[str, Any]`` or ``Any`` give, say nothing)."""
    if "$ref" in schema:
        component = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        return bool(component.get("properties"))
    if schema.get("type") == "array":
        return declared(schema.get("items", {}), spec)
    choices = schema.get("anyOf") or schema.get("oneOf") or []
    return bool(choices) and all(declared(choice, spec) for choice in choices)


def test_openapi_declares_the_document_of_every_json_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operations = {f"{method.upper()} {path}": operation for path, methods in spec["paths"].items()
                  for method, operation in methods.items()}
    documents = {name: operation["responses"]["200"]["content"]["application/json"]["schema"]
                 for name, operation in operations.items()
                 if "application/json" in operation["responses"].get("200", {}).get("content", {})}
    assert set(documents) == JSON_ROUTES
    assert {name: schema for name, schema in documents.items() if not declared(schema, spec)} == {}
    not_found = operations["GET /api/tiles/{z}/{x}/{y}"]["responses"]["404"]["content"]["application/json"]
    assert not_found["schema"] == {"$ref": "#/components/schemas/TileNotFound"}
    # The streamed routes name their other formats too.
    assert {"application/geo+json", "text/csv; charset=utf-8"} <= set(
        operations["GET /api/bbox"]["responses"]["200"]["content"])
    assert "text/csv; charset=utf-8" in operations["GET /api/jobs/{job_id}/failures"]["responses"]["200"]["content"]


def test_every_answer_is_its_declared_document(sqlite_region: Region, client: TestClient) -> None:
    """Each answer validates as its model (no key more or less, none of another type) and is what the model
    writes back; the streamed answers, which FastAPI does not validate, included."""
    from api.map_schemas import JobLayers, TileJSON
    from api.schemas import (
        Health,
        JobStatus,
        ModelDetail,
        ModelSummary,
        RegionAnswers,
        Summary,
        TileFailure,
        TileNotFound,
        TileReport,
    )

    job, model, (x, y) = sqlite_region.job_id, sqlite_region.model_hash, BASE
    box = ",".join(str(value) for value in sqlite_region.bbox.as_list())
    answers: list[tuple[str, Any, int]] = [
        ("/healthz", Health, 200), ("/readyz", Health, 200), ("/api/jobs", list[JobStatus], 200),
        (f"/api/jobs/{job}", JobStatus, 200), (f"/api/jobs/{job}/failures", list[TileFailure], 200),
        (f"/api/jobs/{job}/layers", JobLayers, 200), ("/api/models", list[ModelSummary], 200),
        (f"/api/models/{model}", ModelDetail, 200), (f"/api/tiles/{ZOOM}/{x}/{y}", TileReport, 200),
        (f"/api/tiles/{ZOOM}/{x}/{y}?top_k=0", TileReport, 200),
        (f"/api/tiles/{ZOOM}/{EMPTY[0]}/{EMPTY[1]}", TileReport, 200),
        (f"/api/tiles/{ZOOM}/{QUAD_HOLE[0]}/{QUAD_HOLE[1]}", TileNotFound, 404),
        (f"/api/bbox?bbox={box}&zoom={ZOOM}&format=json&include_empty=true", RegionAnswers, 200),
        (f"/api/summary?job={job}", Summary, 200), (f"/overlay/{model}/tilejson.json", TileJSON, 200),
        (f"/overlay/{model}/tilejson.json?format=mvt", TileJSON, 200),
    ]
    for url, shape, status in answers:
        answer = client.get(url)
        assert answer.status_code == status, (url, answer.text)
        adapter = TypeAdapter(shape)
        document = adapter.validate_json(answer.content)
        assert adapter.dump_python(document, mode="json", exclude_unset=True) == answer.json(), url
    top_less = client.get(f"/api/tiles/{ZOOM}/{x}/{y}", params={"top_k": 0}).json()
    assert "top" not in top_less and top_less["classified"] is True


def test_pictures_and_vector_tiles_are_one_overlay_route_with_a_format_suffix(sqlite_region: Region,
                                                                             client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    tiles = [path for path in spec["paths"] if path.startswith("/overlay/") and "tilejson" not in path
             and not path.startswith("/overlay/diff/")]  # a diff's overlay is pictures only
    assert tiles == ["/overlay/{model}/{z}/{x}/{y}.{format}"]
    (suffix,) = [p for p in spec["paths"][tiles[0]]["get"]["parameters"] if p["name"] == "format"]
    assert suffix["in"] == "path" and suffix["schema"]["enum"] == ["png", "mvt"]
    url = f"/overlay/{sqlite_region.model_hash}/{ZOOM}/{BASE[0]}/{BASE[1]}"
    for suffix_name, media_type in (("png", "image/png"), ("mvt", "application/vnd.mapbox-vector-tile")):
        answer = client.get(f"{url}.{suffix_name}")
        assert answer.status_code == 200 and answer.headers["content-type"] == media_type
        assert client.get(f"{url}.{suffix_name}", headers={"If-None-Match": answer.headers["etag"]}).status_code == 304
    wrong = client.get(f"{url}.jpg")
    assert wrong.status_code == 400 and wrong.json() == {"detail": "format: Input should be 'png' or 'mvt' (got 'jpg')"}


@pytest.mark.parametrize("suffix", ["png", "mvt"])
def test_the_page_and_tilejson_link_the_same_tile_urls(sqlite_region: Region, client: TestClient,
                                                       suffix: str) -> None:
    layers = client.get(f"/api/jobs/{sqlite_region.job_id}/layers").json()
    document = client.get(f"/overlay/{sqlite_region.model_hash}/tilejson.json", params={"format": suffix}).json()
    assert layers["overlay"].endswith(f"/overlay/{sqlite_region.model_hash}/{{z}}/{{x}}/{{y}}.png?zoom={ZOOM}")
    (template,) = document["tiles"]
    tile = template.replace("http://testserver", "").replace("{z}", str(ZOOM)).replace("{x}", str(BASE[0])) \
        .replace("{y}", str(BASE[1]))
    assert tile.startswith(f"/overlay/{sqlite_region.model_hash}/{ZOOM}/{BASE[0]}/{BASE[1]}.{suffix}?")
    assert client.get(tile).status_code == 200
