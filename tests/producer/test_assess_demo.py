"""``tileclass assess`` on the job ``tileclass demo`` makes (real training, a real background worker), the sample
labelled from the demo's generated land cover (``truth.json``): the done-when of issue 28.

The region is small (8 x 8 tiles) and ``--per-class 50`` takes every map class whole, so the error-adjusted areas
must equal the true areas (a census of every stratum leaves nothing to estimate) and bracket them, whatever the
one-epoch model got wrong. ``tests/producer/test_assess_cli.py`` checks real sampling on a larger made-up map."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import get_settings
from core.tile_area import tile_area_km2
from core.tiles import Tile
from tests.conftest import REPO_ROOT
from tests.producer.conftest import cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_assess_sample_label_report_on_the_demo_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "demo"
    demo = subprocess.run([sys.executable, "-m", "producer", "demo", "--out", str(out), "--epochs", "1",
                           "--per-class", "20", "--region-size", "8"], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=500)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    monkeypatch.chdir(out)  # the demo's database is its folder's tileclass.db, the default
    get_settings.cache_clear()
    truth = json.loads((out / "truth.json").read_text())

    drawn = cli("assess", "sample", 1, "--per-class", 50, "--seed", 1, "--out", "assess")
    assert drawn.exit_code == 0, drawn.output
    sheet = out / "assess" / "sample.csv"
    with sheet.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(truth) == 64  # every tile: each map class is smaller than 50
    for row in rows:
        row["reference"] = truth[f"{row['z']}/{row['x']}/{row['y']}"]
    with sheet.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["z", "x", "y", "reference"])
        writer.writeheader()
        writer.writerows(rows)
    assert cli("assess", "label", 1, sheet, "--author", "truth").exit_code == 0

    report = cli("assess", "report", 1, "--json", "--out", "report")
    assert report.exit_code == 0, report.output
    classes = json.loads(report.stdout)["classes"]
    true_area: dict[str, float] = {}
    for key, label in truth.items():
        true_area[label] = true_area.get(label, 0.0) + tile_area_km2(*Tile.parse(key).xyz())
    for name, area in true_area.items():
        estimate = classes[name]
        assert estimate["area"] == pytest.approx(area, rel=1e-9)
        assert estimate["area"] - estimate["area_ci95"] <= area <= estimate["area"] + estimate["area_ci95"] + 1e-9
    assert (out / "report" / "assessment.json").is_file() and (out / "report" / "areas.png").is_file()
