"""``/overlay/{model}/{z}/{x}/{y}.png?groups=NAME`` (issue 29, part 2): one colour per group at the results' zoom,
two zooms out and far out (where a pixel shows its majority group, not its majority class's group); a ``group`` in
each vector feature; a grouping of another model is a 400, an unknown one a 404."""

from __future__ import annotations

import io
import json
from pathlib import Path

import mapbox_vector_tile
import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from core.class_groups import add_grouping
from core.db import session_scope
from core.palette import class_colour
from core.results import record_results
from tests.api.support import BASE, QUAD, QUAD_HOLE, QUAD_LABELS, ZOOM, Region
from tests.factories import add_model, model_hash, scored

GROUPS = {"wet": ["River"], "land": ["Forest", "Residential"]}
COLOUR = {"wet": class_colour(0), "land": class_colour(1)}  # a group's colour is its place in the grouping
GROUP_OF = {"River": "wet", "Forest": "land", "Residential": "land"}


def _grouped(database_url: str, region: Region, tmp_path: Path) -> None:
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(GROUPS))
    with session_scope(database_url) as session:
        add_grouping(session, name="wetness", model_ref=region.model_hash, path=path)
        add_model(session, "stranger")
        add_grouping(session, name="theirs", model_ref=model_hash("stranger"), path=path)


def _rgba(client: TestClient, path: str, **params: object) -> np.ndarray:
    answer = client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGBA"))


def test_each_group_has_one_colour_near_and_far(region: Region, client: TestClient, database_url: str,
                                               tmp_path: Path) -> None:
    _grouped(database_url, region, tmp_path)
    river = _rgba(client, f"/overlay/{region.model_hash}/{ZOOM}/{BASE[0] + 1}/{BASE[1]}.png", groups="wetness")
    assert (river == (*COLOUR["wet"], 255)).all()
    quad = _rgba(client, f"/overlay/{region.model_hash}/{QUAD.z}/{QUAD.x}/{QUAD.y}.png", groups="wetness")
    for index, label in enumerate(QUAD_LABELS):
        row, column = divmod(index, 4)
        block = quad[row * 64:(row + 1) * 64, column * 64:(column + 1) * 64]
        if (BASE[0] + column, BASE[1] + row) != QUAD_HOLE:
            assert (block == (*COLOUR[GROUP_OF[label]], 255)).all(), (row, column, label)
    # Ten zooms out a pixel covers 4 x 4 result tiles: 6 River, 5 Forest, 5 Residential. River is the most
    # frequent class, but "land" (Forest and Residential, 10 tiles) the most frequent group.
    shift = 10
    origin_x, origin_y = (BASE[0] >> shift) << shift, (BASE[1] >> shift) << shift
    labels = ["River"] * 6 + ["Forest"] * 5 + ["Residential"] * 5
    with session_scope(database_url) as session:
        record_results(session, model_hash=region.model_hash, job_id=None, source_name="city",
                       results=[scored(ZOOM, origin_x + i % 4, origin_y + i // 4, label)
                                for i, label in enumerate(labels)])
    far = f"/overlay/{region.model_hash}/{ZOOM - shift}/{BASE[0] >> shift}/{BASE[1] >> shift}.png"
    assert tuple(_rgba(client, far)[0, 0]) == (*class_colour(1), 255), "by class: River (listed second)"
    assert tuple(_rgba(client, far, groups="wetness")[0, 0]) == (*COLOUR["land"], 255)


def test_vector_tiles_carry_each_features_group(region: Region, client: TestClient, database_url: str,
                                               tmp_path: Path) -> None:
    _grouped(database_url, region, tmp_path)
    answer = client.get(f"/overlay/{region.model_hash}/{QUAD.z}/{QUAD.x}/{QUAD.y}.mvt", params={"groups": "wetness"})
    assert answer.status_code == 200, answer.text
    features = mapbox_vector_tile.decode(answer.content)["results"]["features"]
    assert len(features) == 15
    assert all(f["properties"]["group"] == GROUP_OF[f["properties"]["label"]] for f in features)
    document = client.get(f"/overlay/{region.model_hash}/tilejson.json",
                          params={"format": "mvt", "groups": "wetness"}).json()
    assert document["tiles"][0].endswith(f".mvt?zoom={ZOOM}&groups=wetness")
    assert document["vector_layers"][0]["fields"]["group"] == "String"


def test_another_models_grouping_is_a_400_and_an_unknown_one_a_404(region: Region, client: TestClient,
                                                                  database_url: str, tmp_path: Path) -> None:
    _grouped(database_url, region, tmp_path)
    other = client.get(f"/overlay/{region.model_hash}/{ZOOM}/{BASE[0]}/{BASE[1]}.png", params={"groups": "theirs"})
    assert other.status_code == 400
    assert other.json()["detail"].startswith(f"grouping 'theirs' is for model {model_hash('stranger')[:12]}, not "
                                             f"{region.model_hash[:12]}")
    unknown = client.get(f"/overlay/{region.model_hash}/{ZOOM}/{BASE[0]}/{BASE[1]}.png", params={"groups": "nope"})
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("no grouping 'nope'")
