"""bench/eurosat_splits.py, the calibration benchmark's split, on the tests' EuroSAT subset: every file lands in
exactly one of train/, val/ and test/, each class keeps its share in each, and the split is the same every time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import EUROSAT, REPO_ROOT


def split(out: Path) -> dict[str, int]:
    command = [sys.executable, "-m", "bench.eurosat_splits", "--eurosat", str(EUROSAT), "--out", str(out),
               "--every", "4", "--test", "1", "--val", "1"]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True)
    counts: dict[str, int] = json.loads(result.stdout.strip().splitlines()[-1])
    return counts


def files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*.jpg")}


def test_every_file_lands_in_one_split_with_each_class_in_proportion(tmp_path: Path) -> None:
    counts = split(tmp_path / "a")
    parts = {name: files(tmp_path / "a" / name) for name in ("train", "val", "test")}
    everything = files(EUROSAT)
    assert set().union(*parts.values()) == everything and sum(len(p) for p in parts.values()) == len(everything)
    assert {name: len(part) for name, part in parts.items()} == {k: counts[k] for k in ("train", "val", "test")}
    for name in sorted(p.name for p in EUROSAT.iterdir() if p.is_dir()):
        total = len(list((EUROSAT / name).glob("*.jpg")))
        test, val = (len([f for f in parts[s] if f.startswith(f"{name}/")]) for s in ("test", "val"))
        assert (test, val) == (-(-total // 4), -(-(total - 1) // 4)), name  # the 1st and 2nd of every 4 files
    split(tmp_path / "b")
    assert all(files(tmp_path / "a" / s) == files(tmp_path / "b" / s) for s in ("train", "val", "test"))
