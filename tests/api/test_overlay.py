"""Overlay tiles for a known region: one colour at the results' zoom, 64 px blocks two zooms out, the majority class
per pixel far out, the parent's colour when zoomed in; ETags that change with the results; a TileJSON whose URL
template works."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core.db import session_scope
from core.palette import class_colour
from core.results import record_results
from tests.api.support import BASE, QUAD, QUAD_HOLE, QUAD_LABELS, ZOOM, Region, label_at
from tests.factories import CLASSES, scored

TRANSPARENT = (0, 0, 0, 0)


def colour_of(label: str) -> tuple[int, int, int]:
    return class_colour(CLASSES.index(label))


def rgba(client: TestClient, path: str, **params: object) -> np.ndarray:
    answer = client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(answer.content))
    assert image.size == (256, 256)
    return np.asarray(image.convert("RGBA"))


def test_a_tile_at_the_results_zoom_is_its_class_colour(region: Region, client: TestClient) -> None:
    for dx, dy in [(0, 0), (1, 0), (2, 0), (5, 5)]:
        x, y = BASE[0] + dx, BASE[1] + dy
        pixels = rgba(client, f"/overlay/{region.model_hash}/{ZOOM}/{x}/{y}.png")
        label = label_at(x, y)
        assert label is not None
        assert (pixels == (*colour_of(label), 255)).all()
    hole = rgba(client, f"/overlay/{region.model_hash}/{ZOOM}/{QUAD_HOLE[0]}/{QUAD_HOLE[1]}.png")
    assert (hole[..., 3] == 0).all()


def test_two_zooms_out_each_child_is_a_64_px_block_of_its_colour(region: Region, client: TestClient) -> None:
    pixels = rgba(client, f"/overlay/{region.model_hash[:10]}/{QUAD.z}/{QUAD.x}/{QUAD.y}.png")
    for index, label in enumerate(QUAD_LABELS):
        row, column = divmod(index, 4)
        block = pixels[row * 64:(row + 1) * 64, column * 64:(column + 1) * 64]
        if (BASE[0] + column, BASE[1] + row) == QUAD_HOLE:
            assert (block[..., 3] == 0).all(), "the child without a result is transparent"
        else:
            assert (block == (*colour_of(label), 255)).all(), (row, column, label)


def test_far_out_each_pixel_is_the_majority_class_of_the_tiles_under_it(region: Region, client: TestClient,
                                                                      database_url: str) -> None:
    # Nine zooms out a pixel covers 2 x 2 result tiles. Add a corner of tiles whose majorities are worked out below.
    far_z, shift = ZOOM - 9, 9
    origin_x, origin_y = (BASE[0] >> shift) << shift, (BASE[1] >> shift) << shift
    extra = [("River", 0, 0), ("River", 1, 0), ("Forest", 0, 1),  # pixel (0, 0): River 2 of 3, alpha 3/4
             ("Residential", 2, 0), ("Forest", 3, 1), ("Residential", 2, 1), ("Forest", 3, 0)]  # (1, 0): tie
    with session_scope(database_url) as session:
        record_results(session, model_hash=region.model_hash, job_id=None, source_name="city",
                       results=[scored(ZOOM, origin_x + dx, origin_y + dy, label) for label, dx, dy in extra])
    pixels = rgba(client, f"/overlay/{region.model_hash}/{far_z}/{BASE[0] >> shift}/{BASE[1] >> shift}.png")
    assert tuple(pixels[0, 0]) == (*colour_of("River"), round(255 * 3 / 4))
    assert tuple(pixels[0, 1]) == (*colour_of("Forest"), 255), "a tie goes to the class listed first"
    assert tuple(pixels[0, 2]) == TRANSPARENT
    # The seeded 8 x 8 block is 4 x 4 pixels. Its north-west pixel holds Forest, River, Forest, River: a tie;
    # the next one Residential, River twice each: River is listed before Residential.
    px, py = (BASE[0] - origin_x) // 2, (BASE[1] - origin_y) // 2
    assert tuple(pixels[py, px]) == (*colour_of("Forest"), 255)
    assert tuple(pixels[py, px + 1]) == (*colour_of("River"), 255)
    assert tuple(pixels[py + 1, px + 1]) == (*colour_of("Residential"), round(255 * 3 / 4)), "River's is a hole"
    assert tuple(pixels[py + 3, px + 3]) == (*colour_of("Forest"), 128), "two Forests, a failure, an empty tile"
    assert tuple(pixels[py + 2, px + 2]) == (*colour_of("Forest"), 255)


def test_above_the_results_zoom_a_tile_shows_the_result_that_covers_it(region: Region, client: TestClient) -> None:
    x, y = BASE[0] + 1, BASE[1]  # River
    pixels = rgba(client, f"/overlay/{region.model_hash}/{ZOOM + 3}/{x * 8 + 5}/{y * 8 + 7}.png")
    assert (pixels == (*colour_of("River"), 255)).all()


def test_a_class_filter_leaves_only_those_classes(region: Region, client: TestClient) -> None:
    pixels = rgba(client, f"/overlay/{region.model_hash}/{QUAD.z}/{QUAD.x}/{QUAD.y}.png", label="Residential")
    assert (pixels[0:64, 128:192] == (*colour_of("Residential"), 255)).all()
    assert (pixels[0:64, 0:128, 3] == 0).all(), "Forest and River are hidden"
    unknown = client.get(f"/overlay/{region.model_hash}/{QUAD.z}/{QUAD.x}/{QUAD.y}.png", params={"label": "Lake"})
    assert unknown.status_code == 404 and "unknown label 'Lake'" in unknown.json()["detail"]


def test_overlay_tiles_carry_an_etag_that_changes_with_new_results(region: Region, client: TestClient,
                                                                  database_url: str) -> None:
    path = f"/overlay/{region.model_hash}/{QUAD.z}/{QUAD.x}/{QUAD.y}.png"
    first = client.get(path)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    hole = (ZOOM, *QUAD_HOLE)
    with session_scope(database_url) as session:
        record_results(session, model_hash=region.model_hash, job_id=region.job_id, source_name="city",
                       results=[scored(*hole, "Residential")])
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    block = np.asarray(Image.open(io.BytesIO(changed.content)).convert("RGBA"))[192:256, 192:256]
    assert (block == (*colour_of("Residential"), 255)).all()


def test_tilejson_describes_a_layer_whose_url_template_works(region: Region, client: TestClient) -> None:
    document = client.get(f"/overlay/{region.model_hash[:8]}/tilejson.json").json()
    assert document["tilejson"] == "3.0.0" and document["scheme"] == "xyz"
    assert document["bounds"] == pytest.approx(region.bbox.as_list())
    assert document["center"][2] == ZOOM
    (template,) = document["tiles"]
    assert template.startswith("http://testserver/overlay/") and "{z}/{x}/{y}.png" in template
    url = template.replace("http://testserver", "").replace("{z}", str(ZOOM)).replace("{x}", str(BASE[0] + 1)) \
        .replace("{y}", str(BASE[1]))
    tile = np.asarray(Image.open(io.BytesIO(client.get(url).content)).convert("RGBA"))
    assert (tile == (*colour_of("River"), 255)).all()
    filtered = client.get(f"/overlay/{region.model_hash}/tilejson.json", params={"label": "River", "zoom": ZOOM})
    assert filtered.json()["tiles"][0].endswith(f"?zoom={ZOOM}&label=River")


def test_bad_overlay_requests(region: Region, client: TestClient) -> None:
    assert client.get(f"/overlay/abcdef12/{ZOOM}/{BASE[0]}/{BASE[1]}.png").status_code == 404
    assert client.get(f"/overlay/{region.model_hash}/25/0/0.png").status_code == 400
    assert client.get(f"/overlay/{region.model_hash}/3/8/0.png").status_code == 400
    assert client.get(f"/overlay/{region.model_hash}/3/1/1.png", params={"zoom": 99}).status_code == 400
    empty_area = rgba(client, f"/overlay/{region.model_hash}/{ZOOM}/0/0.png")
    assert (empty_area[..., 3] == 0).all()


def test_vector_tiles_carry_each_result_tile_with_its_label_and_confidence(region: Region,
                                                                         client: TestClient) -> None:
    import mapbox_vector_tile

    def features(path: str, **params: object) -> list[dict[str, object]]:
        answer = client.get(path, params=params)
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/vnd.mapbox-vector-tile"
        layers = mapbox_vector_tile.decode(answer.content, default_options={"y_coord_down": True})
        return list(layers["results"]["features"]) if layers else []

    x, y = BASE[0] + 1, BASE[1]
    (one,) = features(f"/overlay/{region.model_hash}/{ZOOM}/{x}/{y}.mvt")
    assert one["properties"] == {"label": "River", "confidence": 0.7, "uncertain": False, "z": ZOOM, "x": x, "y": y}
    quad = features(f"/overlay/{region.model_hash}/{QUAD.z}/{QUAD.x}/{QUAD.y}.mvt")
    assert len(quad) == 15  # 16 children, one without a result
    for feature in quad:
        properties, ring = feature["properties"], feature["geometry"]["coordinates"][0]  # type: ignore[index]
        column, row = properties["x"] - BASE[0], properties["y"] - BASE[1]  # type: ignore[operator]
        assert properties["label"] == QUAD_LABELS[row * 4 + column]
        assert min(point[0] for point in ring) == column * 1024 and min(point[1] for point in ring) == row * 1024
    rivers = features(f"/overlay/{region.model_hash}/{QUAD.z}/{QUAD.x}/{QUAD.y}.mvt", label="River")
    assert {f["properties"]["label"] for f in rivers} == {"River"} and len(rivers) == 7  # type: ignore[index]
    assert features(f"/overlay/{region.model_hash}/{ZOOM - 9}/{BASE[0] >> 9}/{BASE[1] >> 9}.mvt") == []
    document = client.get(f"/overlay/{region.model_hash}/tilejson.json", params={"format": "mvt"}).json()
    assert document["tiles"][0].endswith(f".mvt?zoom={ZOOM}") and document["minzoom"] == ZOOM - 6
    assert document["vector_layers"][0]["id"] == "results"
