"""The tests run from the repository alone: their data is the committed EuroSAT subset (with its licence) or made at
test time, never a folder beside the checkout (``../shared`` is there on developer machines, not in a fresh clone)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import EUROSAT, REPO_ROOT

OUTSIDE = re.compile(r"""\.\./shared|["']shared["']\s*/|SHARED_DATA|labelmaker-tiles""")
EUROSAT_CLASSES = {"AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                   "PermanentCrop", "Residential", "River", "SeaLake"}


def test_no_test_reads_data_from_beside_the_checkout() -> None:
    offenders = [f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
                 for path in sorted((REPO_ROOT / "tests").rglob("*.py")) if path != Path(__file__)
                 for number, line in enumerate(path.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert offenders == []


def test_the_eurosat_subset_is_small_original_and_licensed() -> None:
    assert {p.name for p in EUROSAT.iterdir() if p.is_dir()} == EUROSAT_CLASSES
    images = sorted(EUROSAT.glob("*/*"))
    assert all(re.fullmatch(rf"{p.parent.name}_\d+\.jpg", p.name) for p in images)  # EuroSAT's own names
    assert sum(p.stat().st_size for p in images) < 5 * 2**20
    licence = (EUROSAT / "LICENSE").read_text()
    assert "MIT License" in licence and "Patrick Helber" in licence and "github.com/phelber/EuroSAT" in licence
