"""``core.diff`` (issue 29, part 3): two jobs over the same tiles whose answers differ on known blocks, on SQLite and
PostgreSQL. The diff must find exactly those blocks, keep uncertain and partial tiles apart as "uncertain change",
count areas with ``core.tile_area``, and refuse jobs it cannot compare in one line."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from core.class_groups import GroupingError, add_grouping
from core.db import session_scope
from core.diff import DiffError, diff_jobs, diff_sides, iter_changes
from core.errors import NotFoundError
from core.jobs import JobBounds, create_job
from core.results import Classified, record_results
from core.tile_area import tile_area_km2
from tests.factories import add_model, scored

Z = 16
X0, Y0 = 34_000, 22_000  # a 12 x 12 block of tiles near 47° N
SIDE = 12
BUILT = {(x, y) for x in range(2, 5) for y in range(2, 5)}  # a 3 x 3 block of forest built on
WIDENED = {(6, y) for y in range(SIDE)}  # the river (column 5) widened by one column
UNSURE_B = (9, 9)  # job B says Residential, but below its uncertain_below
PARTIAL_B = (10, 10)  # job B says River on a tile with only 60% data
UNSURE_SAME = (0, 11)  # uncertain in B, but the same class: unchanged
ONLY_A = (SIDE, 0)  # a column that only job A covered


def before(x: int, y: int) -> str:
    return "River" if x == 5 else "Forest"


def after(x: int, y: int) -> str:
    if (x, y) in BUILT or (x, y) == UNSURE_B:
        return "Residential"
    if (x, y) in WIDENED or (x, y) == PARTIAL_B:
        return "River"
    return before(x, y)


@dataclass
class Jobs:
    url: str
    a: int
    b: int
    other_zoom: int
    other_classes: int


def _result(x: int, y: int, label: str, confidence: float = 0.9) -> Classified:
    return scored(Z, X0 + x, Y0 + y, label, confidence)


@pytest.fixture
def jobs(database_url: str, tmp_path: Path) -> Jobs:
    grouping = tmp_path / "built.json"
    grouping.write_text(json.dumps({"built": ["Residential"], "natural": ["Forest", "River"]}))
    with session_scope(database_url) as session:
        # Two models (a tile holds one result per model): a disagreement map, as two dates will be with vintages.
        model_a, model_b = add_model(session, "diff-a"), add_model(session, "diff-b")
        a = create_job(session, model_hash=model_a, bounds=JobBounds(uncertain_below=0.5)).id
        b = create_job(session, model_hash=model_b, bounds=JobBounds(uncertain_below=0.5)).id
        cells = [(x, y) for x in range(SIDE) for y in range(SIDE)]
        record_results(session, model_hash=model_a, job_id=a, source_name="spring", uncertain_below=0.5,
                       results=[_result(x, y, before(x, y)) for x, y in [*cells, ONLY_A]])
        results_b = [_result(x, y, after(x, y), 0.3 if (x, y) in (UNSURE_B, UNSURE_SAME) else 0.9) for x, y in cells]
        results_b = [replace(r, coverage=0.6) if (r.tile.x - X0, r.tile.y - Y0) == PARTIAL_B else r
                     for r in results_b]
        record_results(session, model_hash=model_b, job_id=b, source_name="autumn", uncertain_below=0.5,
                       results=results_b)
        other_zoom = create_job(session, model_hash=model_b).id
        record_results(session, model_hash=model_b, job_id=other_zoom, source_name="autumn",
                       results=[scored(Z + 1, 2 * X0, 2 * Y0, "Forest")])
        model_c = add_model(session, "diff-c", classes=["field", "water"])
        other_classes = create_job(session, model_hash=model_c).id
        record_results(session, model_hash=model_c, job_id=other_classes, source_name="spring",
                       results=[scored(Z, X0, Y0, "field", classes=["field", "water"])])
        add_grouping(session, name="built", model_ref=model_a, path=grouping)
    return Jobs(database_url, a, b, other_zoom, other_classes)


def _area(tiles: set[tuple[int, int]]) -> float:
    return sum(tile_area_km2(Z, X0 + x, Y0 + y) for x, y in tiles)


def test_the_diff_finds_exactly_the_changed_blocks(jobs: Jobs) -> None:
    with session_scope(jobs.url, read_only=True) as session:
        a, b = diff_sides(session, jobs.a, jobs.b)
        report = diff_jobs(session, a, b)
        changes = list(iter_changes(session, a, b))
    confident = {(t.x - X0, t.y - Y0) for t in changes if not t.uncertain}
    assert confident == BUILT | WIDENED
    assert {(t.x - X0, t.y - Y0) for t in changes if t.uncertain} == {UNSURE_B, PARTIAL_B}
    by_tile = {(t.x - X0, t.y - Y0): t for t in changes}
    assert (by_tile[PARTIAL_B].before, by_tile[PARTIAL_B].after) == ("Forest", "River")
    assert by_tile[UNSURE_B].confidence_a == pytest.approx(0.9) and by_tile[UNSURE_B].confidence_b == pytest.approx(0.3)
    document = report.as_dict()
    assert report.compared == SIDE * SIDE and (report.only_a, report.only_b) == (1, 0)
    assert document["changed"]["tiles"] == len(BUILT | WIDENED)
    assert document["changed"]["area_km2"] == pytest.approx(_area(BUILT | WIDENED), rel=1e-12)
    assert document["uncertain_change"] == {"tiles": 2, "area_km2": pytest.approx(_area({UNSURE_B, PARTIAL_B}))}
    cells = {(t["from"], t["to"]): (t["tiles"], t["uncertain_tiles"]) for t in document["transitions"]}
    unchanged_forest = SIDE * SIDE - SIDE - len(BUILT) - len(WIDENED) - 2
    assert cells == {("Forest", "Residential"): (len(BUILT), 1), ("Forest", "River"): (len(WIDENED), 1),
                     ("Forest", "Forest"): (unchanged_forest - 1, 1), ("River", "River"): (SIDE, 0)}


def test_groups_compare_groups_not_classes(jobs: Jobs) -> None:
    with session_scope(jobs.url, read_only=True) as session:
        a, b = diff_sides(session, jobs.a, jobs.b, groups=("built",))
        report = diff_jobs(session, a, b)
        changes = list(iter_changes(session, a, b))
    # Forest -> River stays within "natural": only the built block (and the uncertain built tile) changed.
    assert {(t.x - X0, t.y - Y0, t.uncertain) for t in changes} == {(x, y, False) for x, y in BUILT} | {
        (*UNSURE_B, True)}
    assert {(t.before, t.after) for t in changes} == {("natural", "built")}
    assert report.as_dict()["unchanged"]["tiles"] == SIDE * SIDE - len(BUILT) - 1


def test_jobs_that_cannot_be_compared_are_one_line(jobs: Jobs) -> None:
    with session_scope(jobs.url, read_only=True) as session:
        with pytest.raises(DiffError, match=r"job .* is at zoom 16 and job .* at zoom 17"):
            diff_sides(session, jobs.a, jobs.other_zoom)
        with pytest.raises(DiffError, match=r"classes Forest, River, Residential and job .* field, water: give "
                                            "--groups"):
            diff_sides(session, jobs.a, jobs.other_classes)
        with pytest.raises(GroupingError, match=r"does not name job .*'s classes field, water"):
            diff_sides(session, jobs.a, jobs.other_classes, groups=("built",))
        with pytest.raises(GroupingError, match="is for model"):
            diff_sides(session, jobs.a, jobs.b, groups=("built", "built"))
        with pytest.raises(DiffError, match="two different jobs"):
            diff_sides(session, jobs.a, jobs.a)
        with pytest.raises(NotFoundError):
            diff_sides(session, jobs.a, 999)
