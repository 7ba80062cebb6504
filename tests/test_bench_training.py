"""bench/train_eurosat.py runs each training variant and prints the summary its write-up is made from (a tiny
budget on two classes: the numbers themselves are not judged, only that every part is measured and reported)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EUROSAT, REPO_ROOT

pytestmark = pytest.mark.slow


def test_the_training_bench_measures_each_variant_with_tta_and_the_standin_speed(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench.train_eurosat", "--data", str(EUROSAT), "--out", str(tmp_path),
               "--parts", "accuracy,standin", "--minutes", "0.02", "--classes", "2", "--per-class", "12",
               "--variants", "baseline,ema+progressive", "--tta-views", "1,2", "--batch-size", "8",
               "--standin-size", "96", "--standin-images", "8", "--standin-steps", "1", "--tta-batches", "1"]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert [row["variant"] for row in summary["variants"]] == ["baseline", "ema+progressive"]
    for row in summary["variants"]:
        assert row["steps"] > 0 and set(row["tta"]) == {"1", "2"}
        assert all(0 <= entry["accuracy"] <= 1 and entry["images_per_second"] > 0 for entry in row["tta"].values())
    assert sorted((tmp_path / "split" / "test").iterdir()) == [tmp_path / "split" / "test" / "AnnualCrop",
                                                              tmp_path / "split" / "test" / "Forest"]
    standin = summary["standin"]
    assert set(standin["train_images_per_second"]) == {"baseline", "ema+progressive"}
    assert set(standin["inference_images_per_second"]) == {"64", "96"}
    assert "| ema+progressive |" in result.stdout and "| TTA views |" in result.stdout
