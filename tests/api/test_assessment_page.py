"""The map page's assessment mode (issue 28) in real headless Chromium against a real ``tileclass serve`` without
``TILECLASS_API_TOKEN``: the browser signs in with the login URL the server printed and opens the job's assessment
sample. The map then shows imagery only (no overlay, no popup naming a tile's class), and the panel never names a
tile's map class. A labeller gives four tiles their reference class with the number keys, goes back one with P and
changes its label, then labels the fifth with its key and the last with a click. The labels land in the sample's
table under the labeller's name, every stratum has the two labelled tiles a report needs, and ``tileclass assess
report`` reports from them."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from core.assessment.store import draw_sample, labelled_units
from core.db import session_scope
from core.schema import AssessmentUnit
from producer.cli import app as cli
from tests.api.server_process import Server, running_server
from tests.api.support import Region, label_at
from tests.api.test_page import ARTIFACTS, browser, responses, wait_until  # noqa: F401 (browser: the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
LOGIN = re.compile(r"http://127\.0\.0\.1:\d+/login\?token=[A-Za-z0-9_-]+$", re.MULTILINE)
CLASSES = ["Forest", "River", "Residential"]  # the model's, in its order: keys 1, 2, 3
PER_CLASS = 2
SHOWN = "document.getElementById('assess-tile').textContent"


@pytest.fixture
def server(sqlite_region: Region, sqlite_url: str, tmp_path: Path) -> Iterator[Server]:
    with session_scope(sqlite_url) as session:
        draw_sample(session, sqlite_region.job_id, per_class=PER_CLASS, seed=5)
    with running_server(sqlite_url, tmp_path / "serve.log") as running:
        yield running


def truth(tile: str) -> str:
    """The reference class the labeller sees in a tile: the map's class, but Forest is River where x is even (the
    map's made-up errors, so the report has some to find)."""
    _, x, y = (int(part) for part in tile.split("/"))
    mapped = label_at(x, y)
    assert mapped is not None
    return "River" if mapped == "Forest" and x % 2 == 0 else mapped


def shown_tile(driver: Any, labelled: int) -> str:
    """The tile on show once ``labelled`` labels are given and its image has loaded."""
    text = wait_until(driver, f"window.tileclassMap.assessment.done.length === {labelled} && "
                              "!window.tileclassMap.assessment.busy && "
                              "document.getElementById('assess-image').complete && "
                              f"document.getElementById('assess-image').naturalWidth > 0 && {SHOWN}")
    return str(text).removeprefix("tile ").split(" ")[0]


def test_a_labeller_labels_the_sample_from_imagery_alone_and_the_report_reads_the_labels(
        browser: Any, server: Server, sqlite_region: Region) -> None:  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    job, total = sqlite_region.job_id, PER_CLASS * len(CLASSES)
    login = LOGIN.search(server.output())
    assert login is not None, server.output()
    browser.get(login.group(0))
    browser.get(f"{server.url}/?job={job}")
    wait_until(browser, "window.tileclassMap.state.tiles.overlay.loaded > 0")  # the map's classes, before
    browser.find_element(By.ID, "assess-open").click()
    wait_until(browser, "!document.getElementById('assess-item').hidden")
    assert browser.execute_script("return window.tileclassMap.state.overlay;") is None  # imagery only
    assert browser.find_element(By.ID, "legend").is_displayed() is False
    keys = browser.execute_script(
        "return [...document.querySelectorAll('#assess-classes button')].map(b => b.textContent);")
    assert keys == [f"{n} {name}" for n, name in enumerate(CLASSES, start=1)]
    hint = browser.find_element(By.CSS_SELECTOR, "#assessment .hint").text
    assert "1" in hint and "9" in hint and "N" in hint and "P" in hint  # the keys, documented on the page
    assert browser.find_element(By.ID, "assess-progress").text == f"0 / {total} labelled"
    name = browser.find_element(By.ID, "assessor")
    name.send_keys(Keys.CONTROL, "a")
    name.send_keys("rita", Keys.TAB)
    ActionChains(browser).move_to_element(browser.find_element(By.ID, "map")).click().perform()
    time.sleep(1)  # a popup would be on show by now: it is never asked for while assessing
    assert browser.execute_script("return document.querySelector('.tile-popup');") is None

    given: dict[str, str] = {}
    for n in range(4):  # four by their keys, each then followed by the next unlabelled tile
        tile = shown_tile(browser, n)
        panel = browser.execute_script("const p = document.getElementById('assessment').cloneNode(true);"
                                       "p.querySelector('#assess-classes').remove(); return p.textContent;")
        assert not any(name in panel for name in CLASSES), panel  # no map class anywhere else in the panel
        assert tile not in given
        given[tile] = truth(tile)
        browser.execute_script("document.activeElement.blur();")
        ActionChains(browser).send_keys(str(CLASSES.index(given[tile]) + 1)).perform()
    fifth = shown_tile(browser, 4)
    assert browser.find_element(By.ID, "assess-progress").text == f"4 / {total} labelled"
    ActionChains(browser).send_keys("p").perform()  # back to the fourth, to change its label
    fourth = wait_until(browser, f"{SHOWN}.split(' ')[1] !== '{fifth}' && {SHOWN}").split(" ")[1]
    assert fourth == list(given)[-1]
    assert browser.find_element(By.ID, "assess-given").text == f"labelled {given[fourth]}"
    chosen = browser.execute_script("return [...document.querySelectorAll('#assess-classes button.chosen')]"
                                    ".map(b => b.dataset.label);")
    assert chosen == [given[fourth]]
    wrong = next(name for name in CLASSES if name != given[fourth])
    ActionChains(browser).send_keys(str(CLASSES.index(wrong) + 1)).perform()
    assert shown_tile(browser, 5) == fifth  # a changed label moves on to the first unlabelled tile after it
    assert browser.find_element(By.ID, "assess-progress").text == f"4 / {total} labelled"  # still four
    given[fifth] = truth(fifth)
    ActionChains(browser).send_keys(str(CLASSES.index(given[fifth]) + 1)).perform()
    sixth = shown_tile(browser, 6)  # the last: by a click
    given[sixth] = truth(sixth)
    browser.find_element(By.CSS_SELECTOR, f"#assess-classes button[data-label='{given[sixth]}']").click()
    wait_until(browser, "window.tileclassMap.assessment.unlabelled === 0")
    assert browser.find_element(By.ID, "assess-progress").text == f"{total} / {total} labelled"
    assert f"tileclass assess report {job}" in browser.find_element(By.ID, "assess-status").text
    imagery = {url: status for url, status in responses(browser).items() if f"/imagery/{job}/" in url}
    assert all(any(url.endswith(f"/imagery/{job}/{tile}") and status == 200 for url, status in imagery.items())
               for tile in given)  # each shown with the job's own imagery
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "serve-assessment.png"))
    browser.find_element(By.ID, "assess-close").click()
    wait_until(browser, "window.tileclassMap.state.overlay !== null")  # the map's classes back
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []

    given[fourth] = wrong
    with session_scope() as session:
        rows = session.execute(select(AssessmentUnit.z, AssessmentUnit.x, AssessmentUnit.y, AssessmentUnit.reference,
                                      AssessmentUnit.author))
        landed = {f"{z}/{x}/{y}": (reference, author) for z, x, y, reference, author in rows}
        units, _, unlabelled = labelled_units(session, job)
    assert landed == {tile: (reference, "rita") for tile, reference in given.items()}
    assert unlabelled == 0 and len(units) == total
    per_stratum = {name: sum(unit.stratum == name for unit in units) for name in CLASSES}
    assert per_stratum == dict.fromkeys(CLASSES, PER_CLASS)  # every stratum has the 2 a report needs
    report = CliRunner().invoke(cli, ["assess", "report", str(job), "--json"])
    assert report.exit_code == 0, report.output
    classes = json.loads(report.stdout[report.stdout.index("{"):])["classes"]
    for name in CLASSES:  # a map class's users' accuracy: the area share of its sampled tiles labelled as it (tiles
        drawn = [unit for unit in units if unit.stratum == name]  # weighted by their areas, the ratio estimator)
        agreed = sum(unit.area for unit in drawn if unit.reference == name) / sum(unit.area for unit in drawn)
        assert classes[name]["users_accuracy"] == pytest.approx(agreed, rel=1e-9)
    assert any(classes[name]["users_accuracy"] < 1 for name in CLASSES)  # the made-up errors were found


def test_a_job_without_a_sample_says_how_to_draw_one_and_the_review_closes_the_assessment(
        browser: Any, sqlite_region: Region, sqlite_url: str, tmp_path: Path) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    with running_server(sqlite_url, tmp_path / "serve.log") as bare:
        login = LOGIN.search(bare.output())
        assert login is not None, bare.output()
        browser.get(login.group(0))
        browser.get(f"{bare.url}/?job={sqlite_region.job_id}")
        wait_until(browser, "window.tileclassMap.state.tiles.overlay.loaded > 0")
        browser.find_element(By.ID, "assess-open").click()
        said = wait_until(browser, "document.getElementById('assess-status').textContent")
        assert f"tileclass assess sample {sqlite_region.job_id}" in said
        assert browser.find_element(By.ID, "assess-item").is_displayed() is False
        assert browser.execute_script("return window.tileclassMap.state.overlay;") is None
        browser.find_element(By.ID, "review-open").click()  # the review queue takes the panel, the overlay returns
        wait_until(browser, "!document.getElementById('review').hidden && window.tileclassMap.state.overlay !== null")
        assert browser.find_element(By.ID, "assessment").is_displayed() is False
        assert browser.execute_script("return window.tileclassMap.assessment.open;") is False
