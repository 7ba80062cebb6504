"""The checkpoint format: round trip, hash and sidecar, and every refusal (never unsafe loading)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from core.sidecar import read_sidecar
from model.arch import build_model
from model.checkpoint import CheckpointMeta, read_checkpoint, save_checkpoint
from model.errors import CheckpointError
from model.predict import Classifier
from model.transforms import IMAGENET_MEAN, IMAGENET_STD, Normalized

CLASSES = ("Forest", "River", "Residential")


def meta(**changes: object) -> CheckpointMeta:
    fields: dict = {"arch": "resnet18", "class_names": CLASSES, "image_size": 32, "mean": IMAGENET_MEAN,
                    "std": IMAGENET_STD, "head": "linear", "train_config": {"lr": 0.1, "image_size": None},
                    "metrics": {"val_accuracy": 0.5}}
    return CheckpointMeta(**(fields | changes))


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("resnet18", len(CLASSES))


def test_round_trip_keeps_weights_metadata_and_hash(tmp_path: Path, net: torch.nn.Module) -> None:
    path = tmp_path / "model.pt"
    digest = save_checkpoint(path, model=net, meta=meta())
    loaded = read_checkpoint(path)
    assert loaded.meta == meta()
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in net.state_dict().items())
    info = read_sidecar(path)  # the registry's torch-free reader agrees with the file
    assert (info.sha256, info.arch, info.class_names, info.image_size) == (digest, "resnet18", list(CLASSES), 32)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert set(sidecar) == {"format", "sha256", "arch", "class_names", "image_size", "metrics", "temperature"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_wrapped_models_are_saved_with_bare_keys(tmp_path: Path, net: torch.nn.Module) -> None:
    wrapped = torch.nn.DataParallel(Normalized(net, IMAGENET_MEAN, IMAGENET_STD))
    save_checkpoint(tmp_path / "a.pt", model=wrapped, meta=meta())
    assert set(read_checkpoint(tmp_path / "a.pt").state_dict) == set(net.state_dict())
    prefixed = {f"_orig_mod.module.{k}": v for k, v in net.state_dict().items()}
    torch.save({"format": "tileclass-checkpoint/1", "meta": meta().to_dict(), "state_dict": prefixed},
               tmp_path / "b.pt")
    assert set(read_checkpoint(tmp_path / "b.pt").state_dict) == set(net.state_dict())


def test_tutorial_style_pickled_model_is_refused_with_advice(tmp_path: Path, net: torch.nn.Module) -> None:
    path = tmp_path / "aerialmodel.pth"
    torch.save(net, path)  # what the tutorial does
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    message = str(error.value)
    assert "pickled whole model" in message and "state_dict" in message and "\n" not in message
    with pytest.raises(CheckpointError, match="pickled whole model"):
        Classifier.load(path, device="cpu")


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "tileclass-checkpoint/1", "meta": _Exploit(marker), "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError):
        Classifier.load(path, device="cpu")
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0.5, 0.99, 0.0])
def test_truncated_or_empty_file(tmp_path: Path, net: torch.nn.Module, keep: float) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, model=net, meta=meta())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"truncated or corrupt|empty") as error:
        read_checkpoint(path)
    assert "tileclass train" in str(error.value)


def test_head_that_does_not_match_the_class_list(tmp_path: Path, net: torch.nn.Module) -> None:
    state = net.state_dict()
    bad = meta(class_names=("Forest", "River", "Residential", "Highway")).to_dict()
    torch.save({"format": "tileclass-checkpoint/1", "meta": bad, "state_dict": state}, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=r"head has 3 outputs but its class list names 4 classes"):
        read_checkpoint(tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="head has 3 outputs"):
        save_checkpoint(tmp_path / "n.pt", model=net, meta=meta(class_names=("a", "b")))


def test_missing_keys_wrong_head_layout_and_bare_state_dict(tmp_path: Path, net: torch.nn.Module) -> None:
    state = dict(net.state_dict())
    del state["layer4.1.bn2.weight"]
    torch.save({"format": "tileclass-checkpoint/1", "meta": meta().to_dict(), "state_dict": state}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match=r"missing keys \['layer4.1.bn2.weight'\]"):
        read_checkpoint(tmp_path / "a.pt")
    tutorial = meta(head="tutorial").to_dict()
    torch.save({"format": "tileclass-checkpoint/1", "meta": tutorial, "state_dict": net.state_dict()},
               tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="do not match resnet18 with a tutorial head"):
        read_checkpoint(tmp_path / "b.pt")
    torch.save(net.state_dict(), tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"bare state_dict.*--weights PATH"):
        read_checkpoint(tmp_path / "c.pt")


def test_tutorial_head_round_trip(tmp_path: Path) -> None:
    tutorial = build_model("resnet18", 3, head="tutorial")
    save_checkpoint(tmp_path / "t.pt", model=tutorial, meta=meta(head="tutorial"))
    loaded = read_checkpoint(tmp_path / "t.pt")
    assert loaded.meta.head == "tutorial" and loaded.state_dict["fc.3.weight"].shape == (3, 512)


def test_expected_hash_mismatch_is_refused(tmp_path: Path, net: torch.nn.Module) -> None:
    path = tmp_path / "model.pt"
    digest = save_checkpoint(path, model=net, meta=meta())
    assert Classifier.load(path, device="cpu", expected_sha256=digest).sha256 == digest
    with pytest.raises(CheckpointError, match="expected 000000000000"):
        Classifier.load(path, device="cpu", expected_sha256="0" * 64)


def test_quantization_images_round_trip_and_are_optional(tmp_path: Path, net: torch.nn.Module) -> None:
    images = torch.randint(0, 256, (5, 3, 24, 24), dtype=torch.uint8)
    save_checkpoint(tmp_path / "c.pt", model=net, meta=meta(), quantization_images=images)
    assert torch.equal(read_checkpoint(tmp_path / "c.pt").quantization_images, images)
    save_checkpoint(tmp_path / "n.pt", model=net, meta=meta())
    assert read_checkpoint(tmp_path / "n.pt").quantization_images.shape == (0, 3, 32, 32)


def test_quantization_images_of_older_files_are_read_under_their_old_key(tmp_path: Path,
                                                                         net: torch.nn.Module) -> None:
    """Checkpoints saved before the rename hold the int8 images under "calibration"; they still quantize."""
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    torch.save({"format": "tileclass-checkpoint/1", "meta": meta().to_dict(), "state_dict": net.state_dict(),
                "calibration": images}, tmp_path / "old.pt")
    assert torch.equal(read_checkpoint(tmp_path / "old.pt").quantization_images, images)


@pytest.mark.parametrize("key", ["quantization_images", "calibration"])
@pytest.mark.parametrize("images", [torch.zeros(4, 32, 32, dtype=torch.uint8), torch.zeros(2, 3, 8, 8),
                                    torch.zeros(2, 1, 8, 8, dtype=torch.uint8), [1, 2, 3]])
def test_malformed_quantization_images_are_refused(tmp_path: Path, net: torch.nn.Module, key: str,
                                                   images: object) -> None:
    torch.save({"format": "tileclass-checkpoint/1", "meta": meta().to_dict(), "state_dict": net.state_dict(),
                key: images}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad.pt: its quantization images must be a uint8 \(N, 3, H, W\)"):
        read_checkpoint(tmp_path / "bad.pt")
