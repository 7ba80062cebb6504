"""model.inputs: the one function from decoded pixels to the model's input, the training data's mean pixel as the
fill of pixels without data (computed by training, kept in the checkpoint), and the coverage rule's wording."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.settings import Settings
from model.checkpoint import CheckpointMeta, read_checkpoint, save_checkpoint
from model.data import load_images, scan_image_folder
from model.errors import CheckpointError
from model.images import LARGE_IMAGE_PIXELS, DecodedTile, decode_tile, decoding_tile
from model.inputs import DEFAULT_FILL, DEFAULT_MIN_COVERAGE, coverage_shortfall, model_input
from model.predict import Classifier
from model.transforms import IMAGENET_MEAN, IMAGENET_STD, resize
from tests.conftest import copy_eurosat_subset


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, "PNG")
    return buffer.getvalue()


def test_pixels_without_data_become_the_fill_then_one_resize_makes_the_input() -> None:
    rgba = np.random.default_rng(0).integers(0, 256, (96, 96, 4), dtype=np.uint8)
    rgba[:, :, 3] = 255
    rgba[:, 40:, 3] = 0  # the right part holds no data; its colour (random here) must not reach the model
    tile = decode_tile(png(rgba, "RGBA"))
    assert tile.valid is not None and tile.coverage == 40 / 96
    made = model_input(tile, size=32, fill=(9, 99, 199))
    filled = rgba[:, :, :3].copy()
    filled[:, 40:] = (9, 99, 199)
    assert torch.equal(made, resize(torch.from_numpy(filled).permute(2, 0, 1).contiguous(), 32))
    # The colour under alpha 0 does not matter; an image without a mask is resized as it is.
    rgba[:, 40:, :3] = 0
    assert torch.equal(model_input(decode_tile(png(rgba, "RGBA")), size=32, fill=(9, 99, 199)), made)
    opaque = decode_tile(png(rgba[:, :, :3].copy()))
    assert opaque.valid is None and opaque.coverage == 1.0
    assert torch.equal(model_input(opaque, size=32, fill=(9, 99, 199)), resize(opaque.pixels, 32))


def test_coverage_below_the_bound_is_worded_with_the_percent_rounded_down() -> None:
    assert coverage_shortfall(0.0625, min_coverage=0.5) == "partial: 6% data"
    assert coverage_shortfall(8 / 256, min_coverage=0.5) == "partial: 3% data"
    assert coverage_shortfall(0.4999, min_coverage=0.5) == "partial: 49% data"  # never reads as the bound
    assert coverage_shortfall(0.29, min_coverage=0.5) == "partial: 29% data"  # (0.29 * 100 is 28.999...)
    assert coverage_shortfall(0.5, min_coverage=0.5) is None
    assert coverage_shortfall(0.01, min_coverage=0) is None
    assert Settings().min_coverage == DEFAULT_MIN_COVERAGE == 0.5
    with pytest.raises(ValueError, match="less than or equal to 1"):
        Settings(min_coverage=1.5)


def test_a_checkpoint_keeps_its_fill_pixel_and_one_without_gets_the_imagenet_mean_pixel(tmp_path: Path) -> None:
    from model.arch import build_model

    meta = CheckpointMeta(arch="resnet18", class_names=("a", "b"), image_size=32, mean=IMAGENET_MEAN,
                          std=IMAGENET_STD, fill_pixel=(1, 2, 3))
    save_checkpoint(tmp_path / "m.pt", model=build_model("resnet18", 2), meta=meta)
    assert read_checkpoint(tmp_path / "m.pt").meta.fill_pixel == (1, 2, 3)
    assert Classifier.load(tmp_path / "m.pt", device="cpu").input_fill == (1, 2, 3)
    older = {key: value for key, value in meta.to_dict().items() if key != "fill_pixel"}
    assert CheckpointMeta.from_dict(older).fill_pixel == DEFAULT_FILL == tuple(round(255 * m) for m in IMAGENET_MEAN)
    assert DEFAULT_FILL != (0, 0, 0)
    for bad in ([1, 2], [0, 0, 256], [0.5, 1, 2], "grey"):
        with pytest.raises(CheckpointError, match=r"a fill pixel is 3 integers 0\.\.255"):
            CheckpointMeta.from_dict(older | {"fill_pixel": bad})


def test_training_data_fills_with_its_own_mean_pixel_partly_transparent_images_included(tmp_path: Path) -> None:
    root = copy_eurosat_subset(tmp_path / "data", per_class=3, classes=("Forest", "SeaLake"))
    partial = np.asarray(Image.open(root / "SeaLake" / "SeaLake_1.jpg").convert("RGBA")).copy()
    partial[:, :20, 3] = 0
    partial[:, :20, :3] = 255  # white under alpha 0: it must count for nothing
    (root / "SeaLake" / "SeaLake_9.png").write_bytes(png(partial, "RGBA"))
    folder = scan_image_folder(root)
    sums, count = np.zeros(3), 0
    for path, _ in folder.samples:
        rgba = np.asarray(Image.open(path).convert("RGBA")).reshape(-1, 4)
        valid = rgba[rgba[:, 3] > 0, :3]
        sums, count = sums + valid.sum(axis=0), count + len(valid)
    mean = tuple(int(v) for v in np.round(sums / count))
    loaded = load_images(folder.samples, size=32, workers=2)
    assert loaded.fill == mean != DEFAULT_FILL
    index = [p.name for p in loaded.paths].index("SeaLake_9.png")
    expected = model_input(decode_tile((root / "SeaLake" / "SeaLake_9.png").read_bytes()), size=32, fill=mean)
    assert torch.equal(loaded.images[index], expected)  # decoded again once the mean was known
    given = load_images(folder.samples, size=32, fill=(0, 0, 0), workers=2)
    assert given.fill == (0, 0, 0) and not torch.equal(given.images[index], expected)


@pytest.mark.slow
def test_training_stores_the_mean_pixel_in_the_checkpoint_with_normalize_none(tmp_path: Path) -> None:
    from model.config import TrainConfig
    from model.train import fit

    root = copy_eurosat_subset(tmp_path / "data", per_class=4, classes=("Forest", "SeaLake"))
    config = TrainConfig(arch="resnet18", weights="none", normalize="none", epochs=1, batch_size=4, image_size=32,
                         seed=0)
    result = fit(config, data_dir=root, out_dir=tmp_path / "out", progress=False)
    fill = load_images(scan_image_folder(root).samples, size=32).fill
    assert read_checkpoint(result.checkpoint).meta.fill_pixel == fill
    assert Classifier.load(result.checkpoint, device="cpu").input_fill == fill


def test_a_large_tile_holds_the_large_image_gate_until_its_input_is_made() -> None:
    import model.images

    side = int(LARGE_IMAGE_PIXELS**0.5) + 8
    data = png(np.zeros((side, side, 3), np.uint8))
    with decoding_tile(data) as tile:
        assert isinstance(tile, DecodedTile) and model.images._large_images.locked()
        other = threading.Thread(target=decode_tile, args=(data,))
        other.start()
        other.join(timeout=1)
        assert other.is_alive()  # a second large tile waits for this one's input to be made
    other.join(timeout=30)
    assert not other.is_alive() and not model.images._large_images.locked()
