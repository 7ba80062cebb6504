"""The map's uncertain filter on the server: overlay tiles (PNG and MVT) with ``?uncertain=true`` draw only the
uncertain answers, with ``?uncertain=false`` none of them, and without it all of them (uncertain ones hatched)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.db import session_scope
from core.results import record_results
from tests.api.support import BASE, QUAD, QUAD_HOLE, QUAD_LABELS, ZOOM, Region
from tests.api.test_overlay import colour_of, rgba
from tests.factories import scored


@pytest.fixture
def unsure_rivers(region: Region) -> set[tuple[int, int]]:
    """The River answers under ``QUAD``, recorded again under a job bound of 0.8: at 0.7 they are uncertain."""
    rivers = {(BASE[0] + index % 4, BASE[1] + index // 4) for index, label in enumerate(QUAD_LABELS)
              if label == "River"} - {QUAD_HOLE}
    with session_scope() as session:
        record_results(session, model_hash=region.model_hash, job_id=region.job_id, source_name="city",
                       results=[scored(ZOOM, x, y, "River", 0.7) for x, y in sorted(rivers)], uncertain_below=0.8)
    return rivers


def test_the_overlay_draws_only_or_none_of_the_uncertain_answers(region: Region, client: TestClient,
                                                                 unsure_rivers: set[tuple[int, int]]) -> None:
    path = f"/overlay/{region.model_hash}/{QUAD.z}/{QUAD.x}/{QUAD.y}.png"
    every, only, none = rgba(client, path), rgba(client, path, uncertain="true"), rgba(client, path, uncertain="false")
    for index, label in enumerate(QUAD_LABELS):
        row, column = divmod(index, 4)
        cell = (BASE[0] + column, BASE[1] + row)
        if cell == QUAD_HOLE:
            continue
        blocks = [pixels[row * 64:(row + 1) * 64, column * 64:(column + 1) * 64] for pixels in (every, only, none)]
        drawn = [bool((block[..., 3] > 0).any()) for block in blocks]
        if cell in unsure_rivers:  # hatched: its colour with transparent stripes, in all answers and in "only"
            assert drawn == [True, True, False], cell
            assert (blocks[1][blocks[1][..., 3] > 0] == (*colour_of("River"), 255)).all()
            assert (blocks[1][..., 3] == 0).any()
        else:
            assert drawn == [True, False, True], cell
            assert (blocks[2] == (*colour_of(label), 255)).all()


def test_vector_tiles_follow_the_uncertain_filter(region: Region, client: TestClient,
                                                  unsure_rivers: set[tuple[int, int]]) -> None:
    import mapbox_vector_tile

    def features(**params: object) -> list[dict[str, object]]:
        answer = client.get(f"/overlay/{region.model_hash}/{QUAD.z}/{QUAD.x}/{QUAD.y}.mvt", params=params)
        assert answer.status_code == 200
        layers = mapbox_vector_tile.decode(answer.content, default_options={"y_coord_down": True})
        return list(layers["results"]["features"]) if layers else []

    only = features(uncertain="true")
    assert {(f["properties"]["x"], f["properties"]["y"]) for f in only} == unsure_rivers  # type: ignore[index]
    assert all(f["properties"]["uncertain"] for f in only)  # type: ignore[index]
    assert len(features(uncertain="false")) == 15 - len(unsure_rivers) and len(features()) == 15
    bad = client.get(f"/overlay/{region.model_hash}/{QUAD.z}/{QUAD.x}/{QUAD.y}.png", params={"uncertain": "maybe"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("uncertain:")
