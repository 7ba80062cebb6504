"""Data folders: scanning, bad layouts, skipped files, the seeded stratified split, and in-memory loading."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest
import torch

from model.data import load_images, scan_image_folder, stratified_split
from model.errors import DataError
from tests.conftest import copy_eurosat_subset


def test_scan_lists_sorted_classes_and_ignores_other_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = copy_eurosat_subset(tmp_path / "data", per_class=3, classes=("River", "Forest"))
    (root / "Forest" / "notes.txt").write_text("not an image")
    (root / "Forest" / ".DS_Store").write_bytes(b"\0")
    with caplog.at_level(logging.WARNING):
        folder = scan_image_folder(root)
    assert folder.class_names == ["Forest", "River"]
    assert Counter(label for _, label in folder.samples) == {0: 3, 1: 3}
    assert [p.name for p in folder.ignored] == ["notes.txt"]
    assert "ignored 1 non-image file" in caplog.text


def test_bad_layouts_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        scan_image_folder(tmp_path / "nope")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match=r"no class folders .*DATA_DIR/<class>/<image>"):
        scan_image_folder(flat)
    one = copy_eurosat_subset(tmp_path / "one", per_class=2, classes=("Forest",))
    with pytest.raises(DataError, match=r"only one class folder \(Forest\)"):
        scan_image_folder(one)
    empty = copy_eurosat_subset(tmp_path / "empty", per_class=2, classes=("Forest", "River"))
    (empty / "Highway").mkdir()
    (empty / "Lake").mkdir()
    (empty / "Lake" / "readme.md").write_text("-")
    with pytest.raises(DataError, match=r"class folders without images in .*: Highway, Lake"):
        scan_image_folder(empty)


def test_corrupt_images_are_skipped_with_a_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = copy_eurosat_subset(tmp_path / "data", per_class=4, classes=("Forest", "River"))
    (root / "Forest" / "broken.jpg").write_bytes((root / "Forest" / "Forest_1.jpg").read_bytes()[:500])
    (root / "River" / "page.png").write_text("<html></html>")
    (root / "River" / "empty.jpg").write_bytes(b"")
    folder = scan_image_folder(root)
    with caplog.at_level(logging.WARNING):
        loaded = load_images(folder.samples, size=32, workers=2)
    assert loaded.images.shape == (8, 3, 32, 32) and loaded.images.dtype == torch.uint8
    assert loaded.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert sorted(reason for _, reason in loaded.skipped) == ["not an image", "truncated image", "zero-byte file"]
    assert "skipped 3 unreadable image(s)" in caplog.text
    assert all(p.name.startswith(("Forest_", "River_")) for p in loaded.paths)


def test_split_is_stratified_seeded_and_disjoint() -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    train, val = stratified_split(labels, val_fraction=0.2, seed=7)
    assert Counter(labels[val].tolist()) == {0: 10, 1: 6, 2: 4}
    assert Counter(labels[train].tolist()) == {0: 40, 1: 24, 2: 16}
    assert set(train.tolist()).isdisjoint(val.tolist()) and len(train) + len(val) == 100
    again_train, again_val = stratified_split(labels, val_fraction=0.2, seed=7)
    assert torch.equal(val, again_val) and torch.equal(train, again_train)
    _, other = stratified_split(labels, val_fraction=0.2, seed=8)
    assert not torch.equal(val, other)


def test_split_keeps_tiny_classes_trainable_and_rejects_bad_fractions() -> None:
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    train, val = stratified_split(labels, val_fraction=0.5, seed=0)
    assert Counter(labels[val].tolist()) == {0: 1, 2: 2}  # class 1 has one image: training only
    assert 2 in train.tolist()
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(DataError, match=r"between 0 and 1"):
            stratified_split(labels, val_fraction=bad, seed=0)
