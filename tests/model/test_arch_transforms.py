"""Networks (heads, freezing, local weights) and the tensor augmentations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from model.arch import build_model
from model.errors import CheckpointError, DataError
from model.transforms import augment, resize


def test_heads_and_class_count() -> None:
    linear = build_model("resnet18", 5)
    assert isinstance(linear.fc, nn.Linear) and linear.fc.out_features == 5
    tutorial = build_model("resnet18", 7, head="tutorial")
    layers = [type(m).__name__ for m in tutorial.fc]
    assert layers == ["Linear", "ReLU", "Dropout", "Linear", "LogSoftmax"]
    assert tutorial.fc[0].out_features == 512 and tutorial.fc[3].out_features == 7
    tutorial.eval()
    out = tutorial(torch.rand(2, 3, 32, 32))
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(2), atol=1e-5)  # log-probabilities


def test_freeze_backbone_leaves_only_the_head_trainable() -> None:
    model = build_model("resnet18", 3, freeze="backbone")
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}


def test_unknown_choices_name_the_valid_ones() -> None:
    with pytest.raises(DataError, match=r"unknown arch 'vgg16': choose one of resnet18, resnet34, resnet50, resnet101"):
        build_model("vgg16", 3)
    with pytest.raises(DataError, match="choose one of linear, tutorial"):
        build_model("resnet18", 3, head="mlp")
    with pytest.raises(DataError, match="at least 2 classes"):
        build_model("resnet18", 1)


def test_local_torchvision_weights_load_into_the_backbone(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    torch.manual_seed(1)
    source = resnet18(num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    model = build_model("resnet18", 4, weights=str(path))
    assert torch.equal(model.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    assert model.fc.out_features == 4
    torch.save(build_model("resnet34", 4).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(CheckpointError, match="does not fit resnet18"):
        build_model("resnet18", 4, weights=str(tmp_path / "r34.pth"))
    with pytest.raises(CheckpointError, match="does not exist"):
        build_model("resnet18", 4, weights=str(tmp_path / "missing.pth"))


def test_augment_turns_and_flips_keep_pixels_and_is_seeded() -> None:
    images = torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8)
    out = augment(images, torch.Generator().manual_seed(0), shift=0, jitter=0)
    assert out.shape == images.shape and out.dtype == torch.uint8
    for before, after in zip(images, out, strict=True):  # a dihedral transform only moves pixels around
        assert torch.equal(before.flatten(1).sort(dim=1).values, after.flatten(1).sort(dim=1).values)
    assert not torch.equal(out, images)
    again = augment(images, torch.Generator().manual_seed(0), shift=0, jitter=0)
    assert torch.equal(out, again)
    full = augment(images, torch.Generator().manual_seed(3))
    assert full.shape == images.shape and not torch.equal(full, out)


def test_shift_moves_content_by_at_most_the_margin() -> None:
    image = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    image[..., 16, 16] = 255
    moved = set()
    for seed in range(10):
        out = augment(image, torch.Generator().manual_seed(seed), jitter=0)
        ys, xs = torch.nonzero(out[0, 0] == 255, as_tuple=True)
        assert len(ys) == 1  # moved (and maybe turned), never duplicated or lost
        # Turns and flips put the dot at 15 or 16 per axis; the shift adds at most 32 / 16 = 2 pixels.
        assert 13 <= int(ys[0]) <= 18 and 13 <= int(xs[0]) <= 18
        moved.add((int(ys[0]), int(xs[0])))
    assert len(moved) > 3


def test_resize_keeps_uint8_and_values() -> None:
    flat = torch.full((3, 64, 64), 77, dtype=torch.uint8)
    assert torch.equal(resize(flat, 32), torch.full((3, 32, 32), 77, dtype=torch.uint8))
    batch = torch.randint(0, 256, (2, 3, 20, 30), dtype=torch.uint8)
    assert resize(batch, 24).shape == (2, 3, 24, 24)
    assert resize(flat, 64) is flat


@pytest.mark.parametrize(("source", "target"), [(256, 224), (64, 224), (300, 64)])
def test_resize_stays_within_one_of_antialiased_float_bilinear(source: int, target: int) -> None:
    # Smooth content with edges, as tiles have: PyTorch's uint8 kernel must give what the float path would, to 1.
    generator = torch.Generator().manual_seed(0)
    coarse = torch.randint(0, 256, (2, 3, 9, 9), dtype=torch.uint8, generator=generator).float()
    images = torch.nn.functional.interpolate(coarse, size=(source, source), mode="bicubic").clamp(0, 255)
    images = images.round().to(torch.uint8)
    reference = torch.nn.functional.interpolate(images.float(), size=(target, target), mode="bilinear",
                                                antialias=True, align_corners=False).round().clamp(0, 255)
    got = resize(images, target)
    assert got.dtype == torch.uint8 and got.shape == (2, 3, target, target)
    assert int((got.int() - reference.int()).abs().max()) <= 1
    assert torch.equal(resize(images[0], target), got[0])  # one image or a batch: the same pixels
