"""``/overlay/diff/{job_a}/{job_b}/{z}/{x}/{y}.png`` (issue 29, part 3): the changed tiles of
``tests/core/test_diff.py``'s two jobs in their "to" class's colour at the results' zoom, one zoom out and far out
(alpha: the share of tiles that changed); uncertain changes hatched; unchanged tiles transparent; ``?groups=``;
jobs that cannot be compared are a 400, an unknown job a 404; ``/api/diffs`` as ``tileclass diff --json`` and the
changed tiles in a box. On SQLite and PostgreSQL."""

from __future__ import annotations

import io

import mercantile
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core.palette import class_colour
from core.settings import get_settings
from tests.core.test_diff import BUILT, PARTIAL_B, UNSURE_B, WIDENED, X0, Y0, Jobs, Z, jobs  # noqa: F401
from tests.factories import CLASSES

RESIDENTIAL, RIVER = (*class_colour(CLASSES.index("Residential")), 255), (*class_colour(CLASSES.index("River")), 255)


@pytest.fixture
def served(jobs: Jobs, monkeypatch: pytest.MonkeyPatch) -> Jobs:  # noqa: F811
    monkeypatch.setenv("TILECLASS_DATABASE_URL", jobs.url)
    get_settings.cache_clear()
    return jobs


def _rgba(client: TestClient, served: Jobs, z: int, x: int, y: int, **params: object) -> np.ndarray:
    answer = client.get(f"/overlay/diff/{served.a}/{served.b}/{z}/{x}/{y}.png", params=params)
    assert answer.status_code == 200, answer.text
    return np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGBA"))


def test_changed_tiles_in_the_to_class_colour(served: Jobs, client: TestClient) -> None:
    built, widened = sorted(BUILT)[0], sorted(WIDENED)[0]
    assert (_rgba(client, served, Z, X0 + built[0], Y0 + built[1]) == RESIDENTIAL).all()
    assert (_rgba(client, served, Z, X0 + widened[0], Y0 + widened[1]) == RIVER).all()
    assert (_rgba(client, served, Z, X0, Y0)[..., 3] == 0).all()  # unchanged: nothing drawn
    for tile, colour in ((UNSURE_B, RESIDENTIAL), (PARTIAL_B, RIVER)):  # uncertain changes: hatched
        pixels = _rgba(client, served, Z, X0 + tile[0], Y0 + tile[1])
        drawn = pixels[..., 3] == 255
        assert 0.5 < drawn.mean() < 1 and (pixels[drawn] == colour).all()
    # Deeper than the results: the result tile that contains it.
    assert (_rgba(client, served, Z + 2, 4 * (X0 + built[0]) + 1, 4 * (Y0 + built[1]) + 3) == RESIDENTIAL).all()


def test_one_zoom_out_is_a_grid_of_the_tiles_under_it(served: Jobs, client: TestClient) -> None:
    # The zoom-15 tile over x 4..5, y 2..3 of the block: x 4 was built on, x 5 is the unchanged river.
    pixels = _rgba(client, served, Z - 1, (X0 + 4) // 2, (Y0 + 2) // 2)
    assert (pixels[:, :128] == RESIDENTIAL).all() and (pixels[:, 128:, 3] == 0).all()


def test_far_out_a_pixel_shows_the_share_that_changed(served: Jobs, client: TestClient) -> None:
    # Nine zooms out a pixel covers 2 x 2 result tiles.
    x, y = X0 >> 9, Y0 >> 9
    pixels = _rgba(client, served, Z - 9, x, y)

    def pixel(tx: int, ty: int) -> np.ndarray:
        return pixels[(Y0 + ty - (y << 9)) >> 1, (X0 + tx - (x << 9)) >> 1]

    assert tuple(pixel(2, 2)) == RESIDENTIAL  # tiles 2..3 x 2..3: all built on
    assert tuple(pixel(6, 0)[:3]) == RIVER[:3] and pixel(6, 0)[3] == 128  # x 6 widened, x 7 not: half changed
    assert pixel(0, 0)[3] == 0


def test_groups_colour_groups(served: Jobs, client: TestClient) -> None:
    built, widened = sorted(BUILT)[0], sorted(WIDENED)[0]
    first_group = (*class_colour(0), 255)  # "built" is the grouping's first group
    assert (_rgba(client, served, Z, X0 + built[0], Y0 + built[1], groups="built") == first_group).all()
    assert (_rgba(client, served, Z, X0 + widened[0], Y0 + widened[1], groups="built")[..., 3] == 0).all()


def test_jobs_that_cannot_be_compared(served: Jobs, client: TestClient) -> None:
    answer = client.get(f"/overlay/diff/{served.a}/{served.other_zoom}/{Z}/{X0}/{Y0}.png")
    assert answer.status_code == 400 and "at zoom 16 and job" in answer.json()["detail"]
    assert client.get(f"/overlay/diff/{served.a}/99999/{Z}/{X0}/{Y0}.png").status_code == 404
    assert client.get(f"/overlay/diff/{served.a}/{served.b}/{Z}/{X0}/{Y0}.png", params={"groups": "nope"}
                      ).status_code == 404


def test_the_api_answers_as_the_command_does(served: Jobs, client: TestClient) -> None:
    from core.db import session_scope
    from core.diff import diff_jobs, diff_sides

    with session_scope(served.url, read_only=True) as session:
        expected = diff_jobs(session, *diff_sides(session, served.a, served.b)).as_dict()
    answer = client.get(f"/api/diffs/{served.a}/{served.b}")
    assert answer.status_code == 200 and answer.json() == expected
    assert answer.json()["changed"]["tiles"] == len(BUILT | WIDENED)


def test_the_changed_tiles_in_a_box(served: Jobs, client: TestClient) -> None:
    # The box of tiles 2..4 x 2..4 (the built block), drawn in a little so that no neighbour is touched.
    west, _, _, north = mercantile.bounds(X0 + 2, Y0 + 2, Z)
    _, south, east, _ = mercantile.bounds(X0 + 4, Y0 + 4, Z)
    inset = 1e-7
    box = f"{west + inset},{south + inset},{east - inset},{north - inset}"
    answer = client.get(f"/api/diffs/{served.a}/{served.b}/changes", params={"bbox": box}).json()
    assert {(t["x"] - X0, t["y"] - Y0) for t in answer["tiles"]} == BUILT and not answer["truncated"]
    first = answer["tiles"][0]
    assert (first["from"], first["to"], first["uncertain"]) == ("Forest", "Residential", False)
    assert first["bounds"] == list(mercantile.bounds(first["x"], first["y"], Z))
    cut = client.get(f"/api/diffs/{served.a}/{served.b}/changes", params={"bbox": box, "limit": 4}).json()
    assert len(cut["tiles"]) == 4 and cut["truncated"]
