"""The map page in real headless Chromium (Debian's chromium and chromium-driver, through selenium) against a real
``tileclass serve``: it shows the job's imagery and overlay (every tile request answered 200), lists the job's
classes in the legend, and a click on a tile opens a popup with its label. The screenshot is kept as a test
artifact (``test-artifacts/serve-map.png``, or ``$TILECLASS_TEST_ARTIFACTS``)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mercantile
import pytest

from tests.api.server_process import Server, running_server
from tests.api.support import BASE, SIDE, ZOOM, Region, label_at
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ARTIFACTS = Path(os.environ.get("TILECLASS_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: the map page's test needs Debian's chromium and "
                    "chromium-driver (scripts/services.sh installs them: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or ""), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def server(sqlite_region: Region, sqlite_url: str, tmp_path: Path) -> Iterator[Server]:
    with running_server(sqlite_url, tmp_path / "serve.log") as running:
        yield running


def wait_until(driver: Any, condition: str, *, timeout: float = 30) -> Any:
    """Wait for a JavaScript expression to be truthy; returns its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(
        lambda d: d.execute_script(f"return {condition};"))


def responses(driver: Any) -> dict[str, int]:
    """URL -> HTTP status of every response the page received so far (Chrome's DevTools network events)."""
    found: dict[str, int] = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.responseReceived":
            response = message["params"]["response"]
            found[response["url"]] = int(response["status"])
    return found


def test_the_map_page_shows_the_job_and_a_click_opens_the_tiles_popup(browser: Any, server: Server,
                                                                       sqlite_region: Region) -> None:
    browser.get(f"{server.url}/?job={sqlite_region.job_id}")
    wait_until(browser, "document.querySelectorAll('#legend-classes li').length > 0")
    legend = browser.execute_script(
        "return [...document.querySelectorAll('#legend-classes li')].map(li => [li.dataset.label, "
        "li.querySelector('.count').textContent]);")
    assert legend == [["Forest", "50"], ["River", "7"], ["Residential", "4"]]
    wait_until(browser, "window.tileclassMap.state.tiles.overlay.loaded > 0 && "
                        "window.tileclassMap.state.tiles.imagery.loaded > 0")
    west, south, east, north = sqlite_region.bbox.as_list()
    assert browser.execute_script(  # the map fits the job's extent
        "return window.tileclassMap.map.getBounds().contains([[arguments[0], arguments[1]], [arguments[2], "
        "arguments[3]]]);", south, west, north, east)
    assert ZOOM - 3 <= browser.execute_script("return window.tileclassMap.map.getZoom();") <= ZOOM
    seen = responses(browser)
    overlay = {url: status for url, status in seen.items() if "/overlay/" in url}
    imagery = {url: status for url, status in seen.items() if "/imagery/" in url}
    assert overlay and set(overlay.values()) == {200}, overlay
    assert imagery and all(status == 200 for url, status in imagery.items()
                           if _inside_region(url)), imagery
    assert browser.execute_script("return window.tileclassMap.state.tiles.overlay.failed;") == 0

    x, y = BASE[0] + 1, BASE[1]  # River
    west, south, east, north = mercantile.bounds(x, y, ZOOM)
    spot = browser.execute_script(
        "const p = window.tileclassMap.map.latLngToContainerPoint([arguments[0], arguments[1]]);"
        "return [p.x, p.y];", (south + north) / 2, (west + east) / 2)
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    map_element = browser.find_element(By.ID, "map")
    size = map_element.size
    ActionChains(browser).move_to_element_with_offset(
        map_element, int(spot[0] - size["width"] / 2), int(spot[1] - size["height"] / 2)).click().perform()
    label = wait_until(browser, "document.querySelector('.tile-popup .label')?.textContent")
    assert label == label_at(x, y) == "River"
    popup = browser.execute_script("return document.querySelector('.tile-popup').textContent;")
    assert f"tile {ZOOM}/{x}/{y}" in popup and f"model {sqlite_region.model_hash[:12]}" in popup
    assert f"job {sqlite_region.job_id}" in popup

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "serve-map.png"))
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"
              and "/imagery/" not in entry["message"]]
    assert errors == []


def test_the_map_asks_for_imagery_only_inside_the_jobs_extent_and_draws_the_basemap_around_it(
        browser: Any, sqlite_region: Region, sqlite_url: str, tmp_path: Path) -> None:
    from tests.tile_server import serving

    with serving(tmp_path / "basemap") as basemap, running_server(
            sqlite_url, tmp_path / "serve.log", env={"TILECLASS_BASEMAP_URL": basemap.template,
                                                     "TILECLASS_BASEMAP_ATTRIBUTION": "<b>test</b> basemap"}) as server:
        browser.get(f"{server.url}/?job={sqlite_region.job_id}")
        wait_until(browser, "window.tileclassMap.state.tiles.imagery.loaded > 0 && "
                            "!window.tileclassMap.state.imagery.isLoading()")
        deadline = time.monotonic() + 30
        while not basemap.requests and time.monotonic() < deadline:  # the browser fetches the basemap itself
            time.sleep(0.2)
        imagery = {url: status for url, status in responses(browser).items() if "/imagery/" in url}
        attribution = browser.execute_script(
            "return document.querySelector('.leaflet-control-attribution').textContent;")
    assert imagery and all(_inside_region(url) for url in imagery), sorted(imagery)  # nothing asked outside it
    assert set(imagery.values()) == {200}, imagery
    assert len(imagery) == SIDE * SIDE  # the whole region is in view, each of its tiles asked once
    outside = {tile for tile in basemap.requests if not _inside_region(tile)}
    assert outside, basemap.requests  # the basemap is drawn around the job, fetched from its own server
    assert "<b>test</b> basemap" in attribution  # the credit line as text, not as HTML
    assert " 404 " not in server.output()


def _inside_region(url: str) -> bool:
    z, x, y = (int(part) for part in url.split("?")[0].rstrip("/").split("/")[-3:])
    return z == ZOOM and BASE[0] <= x < BASE[0] + 8 and BASE[1] <= y < BASE[1] + 8


def test_live_progress_class_filter_and_a_drawn_rectangles_downloads(browser: Any, server: Server,
                                                                     sqlite_region: Region, sqlite_url: str) -> None:
    import httpx
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from core.db import session_scope
    from core.jobs import create_job, job_row, record_batch_done, record_batches_enqueued
    from core.results import record_results
    from core.schema import JobState
    from tests.factories import folder_source, scored

    # A second job over the same region, still running: one batch of 4 tiles waits.
    with session_scope(sqlite_url) as session:
        job = create_job(session, model_hash=sqlite_region.model_hash, source=folder_source(sqlite_region.root,
                                                                                           name="city"),
                         region={"zooms": [ZOOM], "bbox": sqlite_region.bbox.as_list(), "geojson": None})
        running = job.id
        row = job_row(session, running)
        row.state, row.total_tiles = JobState.QUEUED, 4
        record_batches_enqueued(session, job_id=running, batches=[(0, 4)])
    browser.get(f"{server.url}/?job={running}")
    wait_until(browser, f"document.getElementById('job-picker').value === '{running}'")
    wait_until(browser, "document.getElementById('job-state').textContent.startsWith('queued')")
    assert "0 classified" in browser.find_element(By.ID, "job-state").text

    # The worker's results arrive: the page follows without a reload.
    tiles = [(BASE[0] + dx, BASE[1] + 7) for dx in range(4)]
    with session_scope(sqlite_url) as session:
        record_results(session, model_hash=sqlite_region.model_hash, job_id=running, source_name="city",
                       results=[scored(ZOOM, x, y, "Residential") for x, y in tiles])
        record_batch_done(session, job_id=running, seq=0, tiles=4, classified=4, failed=0)
    wait_until(browser, "document.getElementById('job-state').textContent.startsWith('completed')", timeout=40)
    wait_until(browser, "document.querySelector('#legend-classes li[data-label=\"Residential\"] .count')"
                        ".textContent === '4'", timeout=20)
    assert "4 classified" in browser.find_element(By.ID, "job-state").text

    # Untick Forest and River: the overlay asks for Residential only.
    for label in ("Forest", "River"):
        browser.find_element(By.CSS_SELECTOR, f'#legend-classes li[data-label="{label}"] input').click()
    overlay_url = wait_until(browser, "window.tileclassMap.state.overlay && window.tileclassMap.state.overlay._url")
    assert "label=Residential" in overlay_url and "label=Forest" not in overlay_url

    # Draw a rectangle over the job's four tiles: its links download exactly their results.
    corners = []
    for x, y in (tiles[0], tiles[-1]):
        west, south, east, north = mercantile.bounds(x, y, ZOOM)
        corners.append(browser.execute_script(
            "const p = window.tileclassMap.map.latLngToContainerPoint([arguments[0], arguments[1]]);"
            "return [p.x, p.y];", (south + north) / 2, (west + east) / 2))
    browser.find_element(By.ID, "draw").click()
    map_element = browser.find_element(By.ID, "map")
    size = map_element.size
    (x0, y0), (x1, y1) = corners  # the centres of the first and last tile: a drag in two steps, as a hand would
    dx, dy = int(x1 - x0), int(y1 - y0) + 4
    ActionChains(browser).move_to_element_with_offset(map_element, int(x0 - size["width"] / 2),
                                                      int(y0 - size["height"] / 2)) \
        .click_and_hold().move_by_offset(dx // 2, dy // 2).move_by_offset(dx - dx // 2, dy - dy // 2) \
        .release().perform()
    href = wait_until(browser, "!document.getElementById('downloads').hidden && "
                               "document.getElementById('download-geojson').href")
    features = httpx.get(href).json()["features"]
    assert sorted((f["properties"]["x"], f["properties"]["y"]) for f in features) == tiles
    assert {f["properties"]["label"] for f in features} == {"Residential"}
    table = httpx.get(browser.find_element(By.ID, "download-csv").get_attribute("href"))
    assert table.headers["content-type"].startswith("text/csv") and len(table.text.strip().splitlines()) == 5
