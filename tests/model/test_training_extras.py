"""What training gained for short budgets and long runs: progressive resizing, a weight average, test-time
augmentation, the budget estimate, and epoch checkpoints that continue a run exactly where it stopped."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from model import budget
from model.checkpoint import read_checkpoint
from model.config import TrainConfig
from model.ema import warmed_up_decay, weight_average
from model.epochs import epoch_files, latest_epoch
from model.errors import DataError
from model.predict import Classifier
from model.safe_load import safe_torch_load
from model.schedule import progressive_rate, progressive_size
from model.train import fit
from model.tta import check_views, dihedral_view
from tests.conftest import copy_eurosat_subset
from tests.worker.support import tiny_checkpoint

TINY = {"arch": "resnet18", "batch_size": 8, "image_size": 32, "workers": 1, "lr": 0.01, "precision": "fp32"}


def test_progressive_sizes_grow_in_steps_of_8_to_the_full_size_at_three_quarters() -> None:
    sizes = [progressive_size(d / 100, full=64, start_share=0.5) for d in range(101)]
    assert sizes[0] == 32 and sizes[74] < 64 and set(sizes[75:]) == {64}
    assert sizes == sorted(sizes) and all(s % 8 == 0 for s in sizes)
    assert progressive_size(0.0, full=64, start_share=1.0) == 64


def test_the_rate_over_a_progressive_run_interpolates_the_time_per_image_in_the_pixel_count() -> None:
    # Time per image proportional to the pixels (measured at the start and full size): a quarter of the pixels at
    # first, then growing, trains about 1.8x the images of a full-size run (the ramp averages 1/share^2 over shares
    # 0.5..1, i.e. 2x, over 3/4 of the time).
    by_pixels = {128: 4 * 10.0, 256: 10.0}
    assert 1.75 <= progressive_rate(by_pixels, full=256, start_share=0.5) / 10.0 < 1.85
    # A fixed cost per image whatever its size: nothing to gain.
    assert progressive_rate({128: 10.0, 256: 10.0}, full=256, start_share=0.5) == pytest.approx(10.0)
    # A half-fixed cost (per-step overheads that do not shrink) gains less than the pixel count alone promises.
    half_fixed = {128: 1 / (0.5 / 10 + 0.5 / 40), 256: 10.0}
    assert 1.0 < progressive_rate(half_fixed, full=256, start_share=0.5) / 10.0 < 1.5
    # A middle measurement is used between its neighbours, and no ramp means the full size's rate.
    assert progressive_rate({128: 40.0, 192: 10.0, 256: 10.0}, full=256, start_share=0.5) < \
        progressive_rate(by_pixels, full=256, start_share=0.5)
    assert progressive_rate({64: 7.0}, full=64, start_share=1.0) == 7.0


def test_the_weight_average_warms_up_then_follows_its_decay() -> None:
    assert warmed_up_decay(0.999, 0) == pytest.approx(0.1) and warmed_up_decay(0.999, 10**6) == 0.999
    model = nn.Linear(1, 1, bias=False)
    average = weight_average(model, decay=0.5)
    expected = []
    for step, value in enumerate([1.0, 3.0, 5.0, 7.0]):
        model.weight.data.fill_(value)
        average.update_parameters(model)
        if step == 0:
            expected.append(value)  # the first update copies
        else:
            rate = warmed_up_decay(0.5, step)
            expected.append(rate * expected[-1] + (1 - rate) * value)
    assert float(average.module.weight.detach()) == pytest.approx(expected[-1])
    assert int(average.state_dict()["n_averaged"]) == 4


def test_tta_views_are_the_eight_symmetries_of_the_square_in_closed_groups() -> None:
    image = torch.arange(9, dtype=torch.uint8).view(1, 1, 3, 3)
    views = [dihedral_view(image, i) for i in range(8)]
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    for count in (2, 4):  # flipping any of the first N views gives one of them again
        firsts = {tuple(v.flatten().tolist()) for v in views[:count]}
        assert {tuple(dihedral_view(v, 1).flatten().tolist()) for v in views[:count]} == firsts
    with pytest.raises(DataError, match="takes 1, 2, 4, 8 views, not 3"):
        check_views(3)


def test_tta_over_all_eight_views_answers_the_same_for_every_orientation(tmp_path: Path) -> None:
    checkpoint = tiny_checkpoint(tmp_path, image_size=32)
    batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    plain = Classifier.load(checkpoint, device="cpu", precision="fp32")
    averaged = Classifier.load(checkpoint, device="cpu", precision="fp32", tta_views=8)
    turned = dihedral_view(batch, 4)
    assert not torch.allclose(plain.predict_tensors(batch), plain.predict_tensors(turned), atol=1e-4)
    assert torch.allclose(averaged.predict_tensors(batch), averaged.predict_tensors(turned), atol=1e-5)
    by_hand = torch.stack([plain.predict_tensors(dihedral_view(batch, i)) for i in range(8)]).mean(dim=0)
    assert torch.allclose(averaged.predict_tensors(batch), by_hand, atol=1e-6)


def test_the_budget_estimate_probes_a_smaller_size_and_says_what_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    probed: list[int] = []

    def rate(*_: object, size: int, **__: object) -> float:  # a machine where cost grows with the pixels
        probed.append(size)
        return 100.0 * (128 / size) ** 2

    monkeypatch.setattr(budget, "measure_rate", rate)
    config = TrainConfig(time_budget_minutes=10, epochs=50)
    images, labels = torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64)
    short = budget.estimate_budget(nn.Identity(), images, labels, config=config, device=torch.device("cpu"),
                                   precision="fp32", size=128, train_images=6000)
    assert short.epochs == pytest.approx(10.0) and not short.enough  # 60,000 images in 600 s
    assert probed == [128, 104] and short.smaller_size == 104 and short.smaller_epochs >= 15
    line = short.describe()
    assert line.startswith("warning: a 10-minute budget allows about 10.0 epochs of 6,000 images at 128 px")
    assert "--image-size 104 would allow about 15" in line and "--time-budget 15 would allow 15 at 128 px" in line
    monkeypatch.setattr(budget, "measure_rate", lambda *_, size, **__: probed.append(size) or 100.0)
    flat = budget.estimate_budget(nn.Identity(), images, labels, config=config, device=torch.device("cpu"),
                                  precision="fp32", size=128, train_images=6000)  # smaller is no faster here
    assert probed[2:] == [128, 104, 80, 64] and flat.smaller_size is None  # three smaller probes at most
    assert "even --image-size 64 would allow only 10.0, but --time-budget 15" in flat.describe()
    few = dataclasses.replace(config, epochs=5)  # the run asks for 5 epochs: 10 are plenty
    assert budget.estimate_budget(nn.Identity(), images, labels, config=few, device=torch.device("cpu"),
                                  precision="fp32", size=128, train_images=6000).enough



def test_with_progressive_resizing_the_budget_probes_the_start_size_too(monkeypatch: pytest.MonkeyPatch) -> None:
    probed: list[int] = []

    def rate(*_: object, size: int, **__: object) -> float:  # half of each image's time does not shrink with size
        probed.append(size)
        return 1 / (0.005 + 0.005 * (size / 128) ** 2)

    monkeypatch.setattr(budget, "measure_rate", rate)
    config = TrainConfig(time_budget_minutes=20, epochs=50, progressive_resize=True)
    images, labels = torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64)
    estimate = budget.estimate_budget(nn.Identity(), images, labels, config=config, device=torch.device("cpu"),
                                      precision="fp32", size=128, train_images=6000)
    assert probed == [128, 64] and estimate.images_per_second == 100.0  # the full size's rate, as described
    expected = 1200 * progressive_rate({64: rate(size=64), 128: 100.0}, full=128, start_share=0.5) / 6000
    # More than the 20 epochs of full size throughout, less than the pixel count alone would promise (about 1.9x).
    assert estimate.epochs == pytest.approx(expected) and 20.0 < estimate.epochs < 20.0 * 1.5 and estimate.enough

@pytest.mark.slow
def test_a_stopped_run_continues_from_its_epoch_checkpoint_exactly(tmp_path: Path) -> None:
    data = copy_eurosat_subset(tmp_path / "data", per_class=10, classes=("Forest", "SeaLake"))
    config = TrainConfig(**TINY, epochs=3, ema=True, ema_decay=0.9, progressive_resize=True, keep_epochs=1)
    whole = fit(config, data_dir=data, out_dir=tmp_path / "whole", progress=False)
    asked: list[int] = []
    stopped = fit(config, data_dir=data, out_dir=tmp_path / "parts", progress=False,
                  should_stop=lambda: len(asked.append(1) or asked) == 2)
    assert stopped.stopped_early and [e["epoch"] for e in stopped.metrics["epochs"]] == [1, 2]
    assert [p.name for p in epoch_files(tmp_path / "parts")] == ["epoch-0002.pt"]  # keep_epochs=1
    saved = safe_torch_load(epoch_files(tmp_path / "parts")[0])  # weights_only: plain types and tensors
    assert saved["epoch"] == 2 and saved["ema"] is not None and saved["config"]["ema"] is True
    with pytest.raises(DataError, match=r"saved by a run with other options \(lr 0.01, now 0.02\)"):
        fit(dataclasses.replace(config, lr=0.02), data_dir=data, out_dir=tmp_path / "parts", progress=False,
            resume=True)
    continued = fit(config, data_dir=data, out_dir=tmp_path / "parts", progress=False, resume=True)
    assert continued.metrics["resumed_from_epoch"] == 2 and not continued.stopped_early
    assert [e["epoch"] for e in continued.metrics["epochs"]] == [1, 2, 3]
    expected = read_checkpoint(whole.checkpoint).state_dict
    found = read_checkpoint(continued.checkpoint).state_dict
    assert all(torch.equal(expected[key], found[key]) for key in expected)  # fp32 on the CPU is deterministic
    assert latest_epoch(tmp_path / "parts") is not None
    fresh = fit(config, data_dir=data, out_dir=tmp_path / "parts", progress=False)  # without resume: afresh
    assert fresh.metrics["resumed_from_epoch"] is None
