"""bench/lib/eurosat.py: the benchmarks' full EuroSAT set is the shared copy beside the checkout, else the one
torchvision's ``EuroSAT`` downloads (its folder layout checked with torchvision itself, no download: the test
machines have no internet)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import EUROSAT


def test_the_shared_copy_comes_first_else_the_folder_torchvision_downloads_into(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.datasets import EuroSAT

    from bench.lib import eurosat

    shared = tmp_path / "beside-the-checkout" / "eurosat-rgb"
    shared.mkdir(parents=True)
    monkeypatch.setattr(eurosat, "SHARED_EUROSAT", shared)
    assert eurosat.eurosat_rgb() == shared

    # Without the shared copy: the folder a previous download left (found, not downloaded again) ...
    cache = tmp_path / "cache" / "tileclass"
    monkeypatch.setattr(eurosat, "SHARED_EUROSAT", tmp_path / "elsewhere")
    monkeypatch.setattr(eurosat, "CACHE", cache)
    monkeypatch.setattr(eurosat, "DOWNLOADED_EUROSAT", cache / "eurosat" / "2750")
    assert eurosat.eurosat_rgb(download=False) == cache / "eurosat" / "2750"
    for name in ("Forest", "SeaLake"):
        (cache / "eurosat" / "2750" / name).mkdir(parents=True)
        shutil.copyfile(EUROSAT / name / f"{name}_1.jpg", cache / "eurosat" / "2750" / name / f"{name}_1.jpg")
    found = eurosat.eurosat_rgb()
    # ... is where torchvision's EuroSAT (download=False: it only checks the folder) reads the same images.
    dataset = EuroSAT(str(cache))
    assert [Path(path) for path, _ in dataset.samples] == sorted(found.glob("*/*.jpg"))
    assert dataset.classes == ["Forest", "SeaLake"]

