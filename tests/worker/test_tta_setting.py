"""TILECLASS_WORKER_TTA: the worker builds its classifier with test-time augmentation when the setting asks, and
the worker's own pipeline then gives the averaged answers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from core.errors import SettingsError
from core.settings import load_settings
from core.sidecar import file_sha256
from core.tiles import Tile
from model.images import DecodedTile
from model.tta import dihedral_view
from tests.worker.support import eurosat_files, tiny_checkpoint
from worker.pipeline import TileFile, classify_tiles
from worker.runtime import load_classifier


def test_the_worker_classifies_with_the_views_its_setting_asks_for(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint = tiny_checkpoint(tmp_path)
    digest = file_sha256(checkpoint)
    monkeypatch.setenv("TILECLASS_DEVICE", "cpu")
    monkeypatch.setenv("TILECLASS_WORKER_COMPILE", "false")
    monkeypatch.setenv("TILECLASS_WORKER_PRECISION", "fp32")
    plain = load_classifier(digest, checkpoint, load_settings())
    monkeypatch.setenv("TILECLASS_WORKER_TTA", "true")
    monkeypatch.setenv("TILECLASS_WORKER_TTA_VIEWS", "4")
    averaged = load_classifier(digest, checkpoint, load_settings())
    assert (plain.tta_views, averaged.tta_views) == (1, 4)
    files = eurosat_files(3)
    with ThreadPoolExecutor(1) as pool:
        found = classify_tiles(averaged, [TileFile(Tile(None, None, None, str(f)), f) for f in files], chunk_size=4,
                               pool=pool)
    images = torch.stack([averaged.model_input(_decode(path)) for path in files])
    expected = torch.stack([plain.predict_tensors(dihedral_view(images, i)) for i in range(4)]).mean(dim=0)
    confidences = [result.confidence for result in found.classified]
    assert confidences == pytest.approx(expected.max(dim=1).values.tolist(), abs=1e-5)


def test_a_view_count_other_than_2_4_or_8_stops_the_worker_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_WORKER_TTA_VIEWS", "3")
    with pytest.raises(SettingsError, match=r"^TILECLASS_WORKER_TTA_VIEWS: must be 2, 4 or 8 \(got 3\)$"):
        load_settings()


def _decode(path: Path) -> DecodedTile:
    from model.images import decode_tile

    return decode_tile(path.read_bytes())
