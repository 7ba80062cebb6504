"""``tileclass assess sample -> label -> report`` end to end on the demo's region (its generated land cover is the
ground truth) with a real database and real tile files, and the commands' one-line errors.

The map is the demo's land cover with errors made on purpose (a seeded share of tiles given another class, more
often some classes than others), so the estimated areas must correct for them: each class's error-adjusted area
must bracket its true area, summed from the ellipsoidal areas of the tiles the land cover gives it."""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from core.db import session_scope
from core.jobs import create_job
from core.results import record_results
from core.settings import get_settings
from core.sources import FolderSource
from core.sources.layouts import Layout
from core.tile_area import tile_area_km2
from core.tiles import Tile
from producer.demo.region import DemoRegion, build_region
from producer.demo.synthetic import CLASSES
from tests.factories import add_model, scored
from tests.producer.conftest import cli

pytestmark = pytest.mark.integration

# How often the made-up classifier calls a tile of the class something else, and what it then says. With 40 tiles
# per class, the region's three smaller map classes are taken whole and the two larger ones (field, trees) about
# half, so every kind of error here is likely to be in the sample: a kind of error the sample never sees cannot be
# corrected (its cell reads 0 with no variance), which is the sample size's business, not the estimator's.
CONFUSED = {"field": (0.25, "trees"), "trees": (0.15, "field"), "residential": (0.3, "road"), "road": (0.2, "field"),
            "water": (0.15, "residential")}
PER_CLASS = 40


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoRegion, Path]:
    """The demo's region at its default place, 16 x 16 tiles of zoom 16, seed 7 (as ``tileclass demo`` makes it),
    and its tile folder."""
    tiles = tmp_path_factory.mktemp("demo") / "tiles"
    return build_region(tiles, lon=-9.1393, lat=38.7223, zoom=16, size=16, seed=7, user_data=None), tiles


@pytest.fixture
def demo_job(sqlite_url: str, region: tuple[DemoRegion, Path], monkeypatch: pytest.MonkeyPatch) -> int:
    """A job over the region's tile folder whose map is its truth with ``CONFUSED``'s errors."""
    return _job(sqlite_url, region, monkeypatch)[0]


def _job(sqlite_url: str, region: tuple[DemoRegion, Path],
         monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict[str, str]]:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    truth, tiles = region[0].truth, region[1]
    rng = random.Random(28)
    mapped = {}
    for key, label in sorted(truth.items()):
        share, other = CONFUSED[label]
        mapped[key] = other if rng.random() < share else label
    source = FolderSource.at(tiles, layout=Layout.parse(None), settings=get_settings()).to_record()
    with session_scope() as session:
        model = add_model(session, classes=CLASSES)
        job = create_job(session, model_hash=model, source=source).id
        record_results(session, model_hash=model, job_id=job, source_name=str(source["name"]), results=[
            scored(*Tile.parse(key).xyz(), label, 0.8, classes=CLASSES) for key, label in mapped.items()])
    return job, mapped


def _fill(sample_csv: Path, truth: dict[str, str], *, only: int | None = None) -> None:
    """Write the demo's land cover into the sample's reference column (the first ``only`` rows, else all)."""
    with sample_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for number, row in enumerate(rows):
        if only is None or number < only:
            row["reference"] = truth[f"{row['z']}/{row['x']}/{row['y']}"]
    with sample_csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["z", "x", "y", "reference"])
        writer.writeheader()
        writer.writerows(rows)


def test_sample_label_report_on_the_demo_region_brackets_the_true_areas(
        sqlite_url: str, region: tuple[DemoRegion, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    demo_job, mapped = _job(sqlite_url, region, monkeypatch)
    truth = region[0].truth
    size = sum(min(PER_CLASS, n) for n in Counter(mapped.values()).values())
    out = tmp_path / "sample"
    drawn = cli("assess", "sample", demo_job, "--per-class", PER_CLASS, "--seed", 4, "--out", out)
    assert drawn.exit_code == 0, drawn.output
    assert f"sample of {size} tiles ({PER_CLASS} per class, seed 4)" in drawn.stdout
    assert f"tileclass assess label {demo_job} {out / 'sample.csv'}" in drawn.stdout
    assert f"job {demo_job} is still enqueuing: the sample is of the tiles classified so far" in drawn.stderr

    # The contact sheet: every sampled tile's image copied beside it, and no map class next to any of them.
    page = (out / "index.html").read_text()
    figures = re.findall(r"<figure.*?</figure>", page)
    assert len(figures) == size and len(list((out / "tiles").iterdir())) == size
    assert not any(name in figure for figure in figures for name in CLASSES)
    with (out / "sample.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["z", "x", "y", "reference"] and len(rows) == size + 1 and {row[3] for row in rows[1:]} == {""}

    _fill(out / "sample.csv", truth, only=1)  # one label is not enough for a report
    assert cli("assess", "label", demo_job, out / "sample.csv", "--author", "ana").exit_code == 0
    early = cli("assess", "report", demo_job)
    assert early.exit_code == 2 and f"{size - 1} sample tiles are still unlabelled" in early.stderr
    assert "at least 2 per class" in early.stderr

    _fill(out / "sample.csv", truth)
    labelled = cli("assess", "label", demo_job, out / "sample.csv", "--author", "ana")
    assert labelled.exit_code == 0, labelled.output
    assert f"{size} of {size} sample tiles labelled, 0 to go" in labelled.stdout

    report = cli("assess", "report", demo_job, "--json", "--out", tmp_path / "report")
    assert report.exit_code == 0, report.output
    document = json.loads(report.stdout)
    assert json.loads((tmp_path / "report" / "assessment.json").read_text()) == document
    assert (tmp_path / "report" / "areas.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    true_area = {name: 0.0 for name in CLASSES}
    for key, label in truth.items():
        true_area[label] += tile_area_km2(*Tile.parse(key).xyz())
    mapped_total = sum(c["mapped_area"] for c in document["classes"].values())
    assert mapped_total == pytest.approx(sum(true_area.values()), rel=1e-9)
    for name in CLASSES:
        estimate = document["classes"][name]
        assert abs(estimate["area"] - true_area[name]) <= estimate["area_ci95"], (name, estimate, true_area[name])
    # The map's errors are large enough that the mapped areas alone miss some truths: the correction matters.
    assert any(abs(c["mapped_area"] - true_area[name]) > 0.1 * true_area[name]
               for name, c in document["classes"].items())
    assert 0 < document["overall"]["accuracy"] < 1 and document["sample"]["unlabelled"] == 0

    text = cli("assess", "report", demo_job)
    assert text.exit_code == 0 and f"job {demo_job}: {size} of {size} sample tiles labelled" in text.stdout


def test_a_bad_label_file_is_one_line_and_records_nothing(demo_job: int, region: tuple[DemoRegion, Path],
                                                        tmp_path: Path) -> None:
    out = tmp_path / "sample"
    assert cli("assess", "sample", demo_job, "--per-class", 3, "--out", out).exit_code == 0
    _fill(out / "sample.csv", region[0].truth)
    good = (out / "sample.csv").read_text()
    lines = good.splitlines()
    cases = {
        "unknown class": ([*lines[:3], ",".join([*lines[3].split(",")[:3], "Wetland"]), *lines[4:]],
                          r"sample\.csv row 4: 'Wetland' is not a class of job \d+'s model: its classes are field, "),
        "not sampled": ([*lines, "16,1,1,water"], r"row 17: tile 16/1/1 is not in job \d+'s assessment sample"),
        "duplicate": ([*lines, lines[2]], r"row 17: tile .* is labelled twice \(also sample\.csv row 3\)"),
        "bad number": ([*lines[:2], "16,x,1,water", *lines[3:]], r"row 3: x 'x' is not a whole number"),
    }
    for name, (content, message) in cases.items():
        (out / "sample.csv").write_text("\n".join(content) + "\n")
        result = cli("assess", "label", demo_job, out / "sample.csv")
        assert result.exit_code == 2, name
        assert re.search(message, result.stderr) and len(result.stderr.strip().splitlines()) == 1, result.stderr
    status = cli("assess", "report", demo_job)
    assert "15 sample tiles are still unlabelled" in status.stderr  # nothing was recorded
    # Drawing again would overwrite the unrecorded labels of sample.csv: refused.
    (out / "sample.csv").write_text(good)
    again = cli("assess", "sample", demo_job, "--per-class", 3, "--out", out)
    assert again.exit_code == 2 and "holds 15 reference labels not recorded yet" in again.stderr


def test_a_job_of_path_only_tiles_and_a_job_without_sample_are_one_line(sqlite_url: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.factories import classified

    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    with session_scope() as session:
        model = add_model(session)
        job = create_job(session, model_hash=model, source={"kind": "folder", "name": "scans"}).id
        record_results(session, model_hash=model, job_id=job, source_name="scans",
                       results=[classified(None, None, None, path=f"scan-{i}.jpg") for i in range(3)])
    result = cli("assess", "sample", job, "--out", tmp_path / "s")
    assert result.exit_code == 2 and "known by their paths only (no z/x/y)" in result.stderr
    missing = cli("assess", "report", job)
    assert missing.exit_code == 2 and f"job {job} has no assessment sample" in missing.stderr
    both = cli("assess", "sample", job, "--per-class", 5, "--proportional", 20, "--out", tmp_path / "s")
    assert both.exit_code == 2 and "not both" in both.stderr
    (tmp_path / "s.csv").write_text("z,x,y,reference\n16,1,1,Forest\n")
    for command in (["sample", 2**63, "--out", tmp_path / "s"], ["label", 2**63, tmp_path / "s.csv"],
                    ["report", 2**63]):  # beyond what SQLite binds: still one line
        beyond = cli("assess", *command)
        assert beyond.exit_code == 2 and f"job {2**63} does not exist: job ids are 1.." in beyond.stderr, beyond.output


def test_a_proportional_sample_and_a_tile_missing_from_the_source(sqlite_url: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.worker.support import tile_tree

    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    folder = tmp_path / "tiles"
    tiles = tile_tree(folder, 12)
    (folder / str(tiles[0].path)).unlink()  # classified, then gone from the folder
    source = FolderSource.at(folder, layout=Layout.parse(None), settings=get_settings()).to_record()
    with session_scope() as session:
        model = add_model(session, classes=CLASSES)
        job = create_job(session, model_hash=model, source=source).id
        record_results(session, model_hash=model, job_id=job, source_name=str(source["name"]), results=[
            scored(*tile.xyz(), CLASSES[i % 2], 0.9, classes=CLASSES) for i, tile in enumerate(tiles)])
    result = cli("assess", "sample", job, "--proportional", 12, "--json", "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["allocation"], document["size"], document["unreadable"]) == ("proportional", 12, 1)
    assert {name: s["sample_size"] for name, s in document["strata"].items()} == {CLASSES[0]: 6, CLASSES[1]: 6}
    page = (tmp_path / "s" / "index.html").read_text()
    assert page.count("no image: no tile file for") == 1 and len(list((tmp_path / "s" / "tiles").iterdir())) == 11
