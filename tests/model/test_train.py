"""fit() beyond the CLI: the config contract, the schedule, the tutorial recipe's options, and the time budget."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from model.arch import build_model
from model.checkpoint import read_checkpoint
from model.config import TrainConfig
from model.data import LoadedImages
from model.errors import DataError
from model.images import open_image
from model.predict import Classifier
from model.schedule import lr_factor
from model.train import fit, quantization_sample
from tests.conftest import copy_eurosat_subset


def test_config_round_trips_through_json_and_rejects_bad_values() -> None:
    config = TrainConfig(arch="resnet50", weights="imagenet", freeze="backbone", head="tutorial", epochs=1,
                         time_budget_minutes=2.5, image_size=224)
    assert TrainConfig(**json.loads(json.dumps(asdict(config)))) == config
    with pytest.raises(DataError, match="unknown optimizer 'rmsprop': choose one of sgd, adam"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(DataError, match="invalid batch_size 1: must be >= 2"):
        TrainConfig(batch_size=1)


def test_schedule_warms_up_then_reaches_zero_at_the_end() -> None:
    assert lr_factor(0.015, schedule="cosine", warmup=0.03) == pytest.approx(0.5)
    assert lr_factor(0.03, schedule="cosine", warmup=0.03) == pytest.approx(1.0)
    assert lr_factor(0.515, schedule="cosine", warmup=0.03) == pytest.approx(0.5)
    assert lr_factor(1.0, schedule="cosine", warmup=0.03) == pytest.approx(0.0)
    assert lr_factor(1.7, schedule="cosine", warmup=0.03) == pytest.approx(0.0)
    values = [lr_factor(d / 100, schedule="cosine", warmup=0.03) for d in range(3, 101)]
    assert values == sorted(values, reverse=True)
    assert lr_factor(0.9, schedule="constant", warmup=0.03) == 1.0


def test_quantization_images_are_training_images_of_every_class_taking_turns() -> None:
    labels = torch.tensor([0] * 10 + [1] * 3 + [2] * 5)
    images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 2, 2).contiguous()
    data = LoadedImages(images, labels, [], [])
    train_idx = torch.tensor([i for i in range(len(labels)) if i not in (0, 13)])  # two images held out
    picked = quantization_sample(data, train_idx, seed=3, count=7)[:, 0, 0, 0].tolist()
    assert len(picked) == len(set(picked)) == 7 and not {0, 13} & set(picked)
    assert [int(labels[i]) for i in picked[:6]] == [0, 1, 2, 0, 1, 2]  # one of each class in turn
    assert quantization_sample(data, train_idx, seed=3, count=7)[:, 0, 0, 0].tolist() == picked  # seeded
    assert len(quantization_sample(data, train_idx, seed=3, count=100)) == len(train_idx)


@pytest.mark.slow
def test_tutorial_options_train_only_the_head_at_an_upsampled_size(tmp_path: Path) -> None:
    data = copy_eurosat_subset(tmp_path / "data", per_class=10, classes=("Forest", "SeaLake"))
    config = TrainConfig(freeze="backbone", head="tutorial", optimizer="adam", lr=0.003, weight_decay=0,
                         label_smoothing=0, schedule="constant", batch_size=8, epochs=1, image_size=80,
                         eval_every=1, seed=5)
    lines: list[str] = []
    result = fit(config, data_dir=data, out_dir=tmp_path / "out", progress=False, report=lines.append)
    stored = read_checkpoint(result.checkpoint)
    meta, state = stored.meta, stored.state_dict
    assert (meta.head, meta.image_size, meta.train_config) == ("tutorial", 80, asdict(config))
    torch.manual_seed(5)  # fit seeds the initialisation the same way
    initial = build_model("resnet18", 2, head="tutorial", freeze="backbone").state_dict()
    changed = {k for k, v in state.items() if not torch.equal(v, initial[k])}
    assert changed and all(k.startswith("fc.") for k in changed)  # backbone weights and BN statistics untouched
    assert sum(line.startswith("Epoch 1/1.. Step ") for line in lines) == 2  # 16 images / batch 8, every step
    classifier = Classifier.load(result.checkpoint, device="cpu")
    assert classifier.preprocess(open_image(data / "Forest" / "Forest_1.jpg")).shape == (3, 80, 80)
    # Every training image (8 per class here) is kept for int8 quantization, at the native 64 px.
    assert read_checkpoint(result.checkpoint).quantization_images.shape == (16, 3, 64, 64)


@pytest.mark.slow
def test_time_budget_stops_training_and_still_validates(tmp_path: Path) -> None:
    data = copy_eurosat_subset(tmp_path / "data", per_class=10, classes=("Forest", "SeaLake"))
    config = TrainConfig(epochs=50, batch_size=4, image_size=32, time_budget_minutes=1e-6)
    lines: list[str] = []
    result = fit(config, data_dir=data, out_dir=tmp_path / "out", progress=False, report=lines.append)
    assert result.metrics["steps"] == 1  # any step outlasts a budget of 60 microseconds
    assert len(result.metrics["epochs"]) == 1 and result.metrics["val_images"] == 4
    assert any(line.startswith("time budget of 1e-06 min reached after 1 steps") for line in lines)
    assert (tmp_path / "out" / "confusion.png").is_file()
