"""The map page's compare mode (issue 29, part 3) in real headless Chromium against a real ``tileclass serve``:
``/?compare=A,B`` shows both jobs' imagery and overlays (every tile answered 200) clipped at a handle that swipes
between them, outlines exactly the tiles whose class changed (an uncertain change dashed), and says how many."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mercantile
import pytest

from core.db import session_scope
from core.jobs import JobBounds, create_job
from core.results import record_results
from tests.api.server_process import Server, running_server
from tests.api.support import BASE, SIDE, ZOOM, Region, label_at
from tests.api.test_page import browser, responses, wait_until  # noqa: F401 (browser: a fixture)
from tests.factories import add_model, folder_source, scored

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHANGED = {(BASE[0] + dx, BASE[1] + dy) for dx in (4, 5) for dy in (4, 5)}  # Forest in job A, River in job B
UNSURE = (BASE[0] + 6, BASE[1] + 2)  # Forest in job A, Residential in job B below its --uncertain-below


@pytest.fixture
def compared(sqlite_region: Region, sqlite_url: str) -> int:
    """Job B: a second model over the seeded region's imagery, answering differently on known tiles."""
    results = []
    for dx in range(SIDE):
        for dy in range(SIDE):
            x, y = BASE[0] + dx, BASE[1] + dy
            label = label_at(x, y)
            if label is None:
                continue
            if (x, y) in CHANGED:
                label = "River"
            confidence = 0.3 if (x, y) == UNSURE else 0.9
            results.append(scored(ZOOM, x, y, "Residential" if (x, y) == UNSURE else label, confidence))
    with session_scope(sqlite_url) as session:
        model = add_model(session, "compare-b")
        job = create_job(session, model_hash=model, source=folder_source(sqlite_region.root, name="city"),
                         region={"zooms": [ZOOM], "bbox": sqlite_region.bbox.as_list(), "geojson": None},
                         bounds=JobBounds(uncertain_below=0.5))
        record_results(session, model_hash=model, job_id=job.id, source_name="city", results=results,
                       uncertain_below=0.5)
        return job.id


@pytest.fixture
def server(sqlite_url: str, compared: int, tmp_path: Path) -> Iterator[Server]:
    with running_server(sqlite_url, tmp_path / "serve.log") as running:
        yield running


def _clip(browser: Any, side: str) -> list[float]:  # noqa: F811
    style = browser.execute_script(f"return window.tileclassMap.map.getPane('compare-{side}').style.clip;")
    return [float(value) for value in re.findall(r"(-?[\d.]+)px", style)]


def test_compare_mode_swipes_between_two_jobs_with_the_changes_outlined(
        browser: Any, server: Server, sqlite_region: Region, compared: int) -> None:  # noqa: F811
    a, b = sqlite_region.job_id, compared
    browser.get(f"{server.url}/?compare={a},{b}")
    wait_until(browser, "window.tileclassMap.compare.outlines !== null && "
                        "window.tileclassMap.compare.tiles.a.loaded > 0 && "
                        "window.tileclassMap.compare.tiles.b.loaded > 0")
    outlines = browser.execute_script(
        "return window.tileclassMap.compare.outlines.getLayers().map(r => {const b = r.getBounds(); "
        "return [b.getCenter().lng, b.getCenter().lat, !!r.options.dashArray];});")
    # Each outline's centre lies in the tile it outlines: turned back into tile coordinates.
    found = {(mercantile.tile(lon, lat, ZOOM).x, mercantile.tile(lon, lat, ZOOM).y, dashed)
             for lon, lat, dashed in outlines}
    assert found == {(x, y, False) for x, y in CHANGED} | {(*UNSURE, True)}
    summary = browser.execute_script("return document.getElementById('compare-summary').textContent;")
    assert f"job {a} ← → job {b}: 4 changed, 1 uncertain" in summary
    assert f"compare={a},{b}" in browser.current_url  # the page keeps its address

    browser.execute_script("const r = document.getElementById('compare-range'); r.value = 30;"
                           "r.dispatchEvent(new Event('input'));")
    width = browser.execute_script("return window.tileclassMap.map.getSize().x;")
    top_a, right_a, _, left_a = _clip(browser, "a")
    top_b, right_b, _, left_b = _clip(browser, "b")
    assert right_a == left_b and right_a - left_a == pytest.approx(0.3 * width, abs=1) and top_a == top_b
    assert right_b - left_b == pytest.approx(0.7 * width, abs=1)
    assert browser.execute_script("return document.getElementById('compare-divider').style.left;") == "30%"

    seen = responses(browser)
    overlays = {url: status for url, status in seen.items() if "/overlay/" in url or "/api/diffs/" in url}
    assert any(sqlite_region.model_hash in url for url in overlays) and set(overlays.values()) == {200}, overlays
    imagery = {url: status for url, status in seen.items() if "/imagery/" in url}
    assert {url.split("/imagery/")[1].split("/")[0] for url in imagery} == {str(a), str(b)}
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"
              and "/imagery/" not in entry["message"]]
    assert errors == []
