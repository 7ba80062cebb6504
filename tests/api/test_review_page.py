"""The map page's review queue and uncertain filter in real headless Chromium against a real ``tileclass serve`` without
``TILECLASS_API_TOKEN``: the browser signs in with the login URL the server printed, opens the review, and a
reviewer goes through five answers with the keyboard, least confident first (confirming some with Enter and Space,
relabelling others with the number keys shown beside the classes). Each choice is a correction, and
``tileclass dataset export`` then writes exactly those tiles under exactly those labels. The uncertain filter redraws
the overlay with only or none of the uncertain answers, and a tile's popup says its coverage and that it is
uncertain."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mercantile
import pytest
from typer.testing import CliRunner

from core.db import session_scope
from core.queries import tile_corrections
from core.results import record_results
from core.tiles import Tile
from producer.cli import app as cli
from tests.api.server_process import Server, running_server
from tests.api.support import BASE, ZOOM, Region
from tests.api.test_page import ARTIFACTS, browser, responses, wait_until  # noqa: F401 (browser: the fixture)
from tests.factories import scored

pytestmark = [pytest.mark.integration, pytest.mark.slow]
LOGIN = re.compile(r"http://127\.0\.0\.1:\d+/login\?token=[A-Za-z0-9_-]+$", re.MULTILINE)
# Five answers made the least confident of the job, in this order: (dx, dy, label, confidence).
LEAST_CONFIDENT = [(5, 5, "Forest", 0.36), (6, 2, "Forest", 0.37), (4, 6, "Forest", 0.4), (7, 1, "Forest", 0.45),
                   (5, 4, "Forest", 0.5)]
# What the reviewer presses for each, and the label it means: Enter or Space confirm, a number picks that class.
ENTER = "\ue007"  # selenium's Keys.ENTER
PRESSES = [(ENTER, "Forest"), ("2", "River"), (" ", "Forest"), ("3", "Residential"), (ENTER, "Forest")]


@pytest.fixture
def server(sqlite_region: Region, sqlite_url: str, tmp_path: Path) -> Iterator[Server]:
    with session_scope(sqlite_url) as session:  # the region's job, its five least confident answers made known
        record_results(session, model_hash=sqlite_region.model_hash, job_id=sqlite_region.job_id, source_name="city",
                       results=[scored(ZOOM, BASE[0] + dx, BASE[1] + dy, label, confidence)
                                for dx, dy, label, confidence in LEAST_CONFIDENT])
    with running_server(sqlite_url, tmp_path / "serve.log") as running:
        yield running


def test_a_reviewer_goes_through_five_answers_with_the_keyboard_and_the_export_takes_their_labels(
        browser: Any, server: Server, sqlite_region: Region, tmp_path: Path) -> None:  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    login = LOGIN.search(server.output())
    assert login is not None, server.output()
    browser.get(login.group(0))  # the printed URL signs this browser in and lands on the map
    wait_until(browser, "document.querySelectorAll('#legend-classes li').length > 0")
    browser.get(f"{server.url}/?job={sqlite_region.job_id}")
    wait_until(browser, "document.querySelectorAll('#legend-classes li').length > 0")
    browser.find_element(By.ID, "review-open").click()
    wait_until(browser, "!document.getElementById('review-item').hidden")
    keys = browser.execute_script(
        "return [...document.querySelectorAll('#review-classes button')].map(b => b.textContent);")
    assert keys == ["1 Forest", "2 River", "3 Residential"]  # the key beside each class
    hint = browser.find_element(By.CSS_SELECTOR, "#review .hint").text
    assert "Enter" in hint and "Space" in hint and "1" in hint and "9" in hint  # documented on the page
    name = browser.find_element(By.ID, "reviewer")
    assert name.get_attribute("value") == "web"
    name.send_keys(Keys.CONTROL, "a")
    name.send_keys("rita", Keys.TAB)  # the change event stores it (localStorage)

    reviewed = []
    for n, ((dx, dy, said, confidence), (key, label)) in enumerate(zip(LEAST_CONFIDENT, PRESSES, strict=True)):
        tile = f"{ZOOM}/{BASE[0] + dx}/{BASE[1] + dy}"
        shown = wait_until(browser, f"window.tileclassMap.review.done.length === {n} && "
                                    "document.getElementById('review-image').complete && "
                                    "document.getElementById('review-image').naturalWidth > 0 && "
                                    "document.getElementById('review-tile').textContent")
        assert shown == f"tile {tile}"  # the least confident first
        said_line = browser.find_element(By.ID, "review-said").text
        assert said_line.startswith(f"the model says {said}, {100 * confidence:.1f}%")
        top = browser.execute_script("return [...document.querySelectorAll('#review-top td:first-child')]"
                                     ".map(td => td.textContent);")
        assert len(top) == 3 and top[0] == said  # the model's top 3
        browser.execute_script("document.activeElement.blur();")  # keys go to the page, not a field
        ActionChains(browser).send_keys(key).perform()
        reviewed.append((tile, label))
    wait_until(browser, "window.tileclassMap.review.done.length === 5")
    assert browser.execute_script("return window.tileclassMap.review.done.map(d => [d.tile, d.label, d.author]);") \
        == [[tile, label, "rita"] for tile, label in reviewed]
    imagery = {url: status for url, status in responses(browser).items() if "/imagery/" in url}
    for tile, _ in reviewed:  # each shown with the job's own imagery
        assert any(url.endswith(f"/imagery/{sqlite_region.job_id}/{tile}") and status == 200
                   for url, status in imagery.items()), (tile, imagery)
    next_tile = wait_until(browser, "document.getElementById('review-tile').textContent")
    assert next_tile not in {f"tile {tile}" for tile, _ in reviewed}  # the page moved on to the next answer
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "serve-review.png"))

    with session_scope() as session:
        for tile, label in reviewed:
            newest, = tile_corrections(session, tile=Tile.parse(tile))
            assert (newest.label, newest.author, newest.model_hash) == (label, "rita", sqlite_region.model_hash)
    out = tmp_path / "reviewed"
    exported = CliRunner().invoke(cli, ["dataset", "export", "--job", str(sqlite_region.job_id), "--out", str(out),
                                        "--min-confidence", "1"])  # no prediction is that sure: corrections only
    assert exported.exit_code == 0, exported.output
    with (out / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((row["file"].split("/")[0], row["origin"], row["author"]) for row in rows) == sorted(
        (label, "corrected", "rita") for _, label in reviewed)
    assert sorted(row["file"] for row in rows) == sorted(
        f"{label}/{tile.replace('/', '-')}.png" for tile, label in reviewed)
    assert browser.execute_script("return localStorage.getItem('tileclass.reviewer');") == "rita"
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def test_the_uncertain_filter_redraws_the_overlay_and_the_popup_says_coverage_and_uncertain(
        browser: Any, server: Server, sqlite_region: Region, sqlite_url: str) -> None:  # noqa: F811
    from dataclasses import replace

    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    x, y = BASE[0] + 1, BASE[1]  # a River answer, now from a tile 62% of whose pixels held data, under a bound of 0.8
    with session_scope(sqlite_url) as session:
        record_results(session, model_hash=sqlite_region.model_hash, job_id=sqlite_region.job_id, source_name="city",
                       results=[replace(scored(ZOOM, x, y, "River", 0.7), coverage=0.62)], uncertain_below=0.8)
    browser.get(f"{server.url}/?job={sqlite_region.job_id}")  # reads: no sign-in on loopback
    wait_until(browser, "window.tileclassMap.state.tiles.overlay.loaded > 0")
    assert "uncertain=" not in browser.execute_script("return window.tileclassMap.state.overlay._url;")
    for value in ("true", "false"):  # only the uncertain answers, then none of them
        Select(browser.find_element(By.ID, "uncertain-filter")).select_by_value(value)
        url = wait_until(browser, f"window.tileclassMap.state.overlay._url.includes('uncertain={value}') && "
                                  "window.tileclassMap.state.overlay._url")
        wait_until(browser, "!window.tileclassMap.state.overlay.isLoading()")
        drawn = {seen: status for seen, status in responses(browser).items() if f"uncertain={value}" in seen}
        assert drawn and set(drawn.values()) == {200}, (url, drawn)
    Select(browser.find_element(By.ID, "uncertain-filter")).select_by_value("")

    west, south, east, north = mercantile.bounds(x, y, ZOOM)
    spot = browser.execute_script(
        "const p = window.tileclassMap.map.latLngToContainerPoint([arguments[0], arguments[1]]);"
        "return [p.x, p.y];", (south + north) / 2, (west + east) / 2)
    map_element = browser.find_element(By.ID, "map")
    size = map_element.size
    ActionChains(browser).move_to_element_with_offset(
        map_element, int(spot[0] - size["width"] / 2), int(spot[1] - size["height"] / 2)).click().perform()
    wait_until(browser, "document.querySelector('.tile-popup .label')")
    popup = browser.execute_script("return document.querySelector('.tile-popup').textContent;")
    assert "River" in popup and "uncertain" in popup and "coverage 62%" in popup, popup
