"""The map page's legend toggle between classes and groups (issue 29, part 2), in real headless Chromium against a
real ``tileclass serve``: choosing a grouping lists its groups with their tile counts and redraws the overlay with
``?groups=NAME`` (every tile answered 200); unticking a group hides its classes; "classes" brings the classes back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.class_groups import add_grouping
from core.db import session_scope
from core.palette import class_colour, hex_colour
from tests.api.server_process import Server, running_server
from tests.api.support import Region
from tests.api.test_page import browser, responses, wait_until  # noqa: F401 (browser: a fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GROUPS = {"wet": ["River"], "land": ["Forest", "Residential"]}
LEGEND = ("[...document.querySelectorAll('#legend-classes li')].map(li => [li.dataset.group || li.dataset.label, "
          "li.querySelector('.count').textContent, li.querySelector('.swatch').style.background])")


@pytest.fixture
def server(sqlite_region: Region, sqlite_url: str, tmp_path: Path) -> Iterator[Server]:
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(GROUPS))
    with session_scope(sqlite_url) as session:
        add_grouping(session, name="wetness", model_ref=sqlite_region.model_hash, path=path)
    with running_server(sqlite_url, tmp_path / "serve.log") as running:
        yield running


def _rgb(colour: tuple[int, int, int]) -> str:
    return "rgb({}, {}, {})".format(*colour)


def _choose(driver: Any, value: str) -> None:
    driver.execute_script("const s = document.getElementById('legend-view'); s.value = arguments[0];"
                          "s.dispatchEvent(new Event('change'));", value)


def test_the_legend_switches_between_classes_and_a_grouping(browser: Any, server: Server,  # noqa: F811
                                                            sqlite_region: Region) -> None:
    browser.get(f"{server.url}/?job={sqlite_region.job_id}")
    wait_until(browser, "document.querySelectorAll('#legend-classes li').length > 0")
    assert not browser.execute_script("return document.getElementById('legend-view-choice').hidden;")
    options = browser.execute_script("return [...document.querySelectorAll('#legend-view option')]"
                                     ".map(o => [o.value, o.textContent]);")
    assert options == [["", "classes"], ["wetness", "groups: wetness"]]

    _choose(browser, "wetness")
    wait_until(browser, "document.getElementById('legend-title').textContent === 'Groups'")
    # The seeded region: 50 Forest, 7 River, 4 Residential (tests/api/test_page.py); a group's colour is its place.
    assert browser.execute_script(f"return {LEGEND};") == [["wet", "7", _rgb(class_colour(0))],
                                                           ["land", "54", _rgb(class_colour(1))]]
    wait_until(browser, "window.tileclassMap.state.overlay && "
                        "window.tileclassMap.state.overlay._url.includes('groups=wetness')")
    grouped: dict[str, int] = {}
    deadline = time.monotonic() + 20  # the class overlay's tiles may have loaded already: wait for the groups' own
    while not grouped and time.monotonic() < deadline:
        grouped = {url: status for url, status in responses(browser).items() if "groups=wetness" in url}
        time.sleep(0.1)
    assert grouped and set(grouped.values()) == {200}, grouped

    browser.execute_script("document.querySelector('#legend-classes li[data-group=\"wet\"] input').click();")
    url = wait_until(browser, "window.tileclassMap.state.overlay._url.includes('label=') && "
                              "window.tileclassMap.state.overlay._url")
    assert "label=Forest&label=Residential" in url and "label=River" not in url and "groups=wetness" in url

    _choose(browser, "")
    wait_until(browser, "document.getElementById('legend-title').textContent === 'Classes'")
    legend = browser.execute_script(f"return {LEGEND};")
    assert [row[:2] for row in legend] == [["Forest", "50"], ["River", "7"], ["Residential", "4"]]
    assert "groups=" not in browser.execute_script("return window.tileclassMap.state.overlay._url;")
    assert hex_colour(class_colour(0)) != hex_colour(class_colour(1))
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"
              and "/imagery/" not in entry["message"]]
    assert errors == []
