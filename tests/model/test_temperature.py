"""The temperature is part of the model bundle: kept in the checkpoint and mirrored in its sidecar, fitted by training
on its validation split, applied by every way of loading a model (eager, compiled, int8), 1.0 for older files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from core.errors import TileclassError
from core.sidecar import file_sha256, read_sidecar, sidecar_path
from model.arch import build_model
from model.calibration import calibrated_softmax, fit_temperature, rescale, scores_from
from model.checkpoint import CheckpointMeta, read_checkpoint, save_checkpoint
from model.data import load_images, scan_image_folder, stratified_split
from model.errors import CheckpointError
from model.images import decode_tile
from model.predict import Classifier
from model.transforms import IMAGENET_MEAN, IMAGENET_STD, Normalized
from tests.conftest import EUROSAT, SUBSET_CLASSES

CLASSES = ("Forest", "River", "Residential")


def meta(**changes: object) -> CheckpointMeta:
    fields: dict = {"arch": "resnet18", "class_names": CLASSES, "image_size": 64, "mean": IMAGENET_MEAN,
                    "std": IMAGENET_STD}
    return CheckpointMeta(**(fields | changes))


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    """A random ResNet18 whose head is scaled up, so that its answers are neither uniform nor certain and a
    temperature shows."""
    torch.manual_seed(0)
    model = build_model("resnet18", len(CLASSES))
    with torch.no_grad():
        model.fc.weight.mul_(4)
    return model.eval()


def images(count: int) -> torch.Tensor:
    names = ("Forest", "Highway", "Residential", "SeaLake")
    return torch.stack([decode_tile((EUROSAT / names[i % 4] / f"{names[i % 4]}_{1001 + i // 4}.jpg").read_bytes())
                        .pixels for i in range(count)])


def test_the_temperature_round_trips_and_the_sidecar_mirrors_it(tmp_path: Path, net: torch.nn.Module) -> None:
    path = tmp_path / "model.pt"
    digest = save_checkpoint(path, model=net, meta=meta(temperature=1.75))
    assert read_checkpoint(path).meta.temperature == 1.75
    assert json.loads(sidecar_path(path).read_text())["temperature"] == 1.75
    info = read_sidecar(path)
    assert (info.sha256, info.temperature) == (digest, 1.75)
    assert Classifier.load(path, device="cpu", precision="fp32").temperature == 1.75


def test_checkpoints_and_sidecars_from_before_it_read_as_one(tmp_path: Path, net: torch.nn.Module) -> None:
    """A file saved before the temperature existed has no such key: it reads as 1.0, the network's own softmax."""
    path = tmp_path / "old.pt"
    save_checkpoint(path, model=net, meta=meta())
    old_meta = meta().to_dict()
    del old_meta["temperature"]
    torch.save({"format": "tileclass-checkpoint/1", "meta": old_meta, "state_dict": net.state_dict()}, path)
    assert read_checkpoint(path).meta.temperature == 1.0
    record = json.loads(sidecar_path(path).read_text())
    del record["temperature"]
    record["sha256"] = file_sha256(path)
    sidecar_path(path).write_text(json.dumps(record))
    assert read_sidecar(path).temperature == 1.0
    classifier = Classifier.load(path, device="cpu", precision="fp32")
    batch = images(4)
    with torch.no_grad():
        expected = torch.softmax(Normalized(net, IMAGENET_MEAN, IMAGENET_STD)(batch), dim=1)
    assert classifier.temperature == 1.0
    assert torch.allclose(classifier.predict_tensors(batch), expected, atol=1e-4)


@pytest.mark.parametrize("bad", [0, -1.5, math.nan, math.inf, "warm"])
def test_a_temperature_that_is_not_a_positive_number_is_refused(tmp_path: Path, net: torch.nn.Module,
                                                                 bad: object) -> None:
    broken = meta().to_dict() | {"temperature": bad}
    torch.save({"format": "tileclass-checkpoint/1", "meta": broken, "state_dict": net.state_dict()},
               tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"malformed .*(temperature must be a positive number|could not convert)"):
        read_checkpoint(tmp_path / "bad.pt")
    path = tmp_path / "model.pt"
    save_checkpoint(path, model=net, meta=meta())
    if isinstance(bad, float) and not math.isfinite(bad):
        return  # JSON has no NaN or infinity to write
    record = json.loads(sidecar_path(path).read_text()) | {"temperature": bad}
    sidecar_path(path).write_text(json.dumps(record))
    with pytest.raises(TileclassError, match=r"model\.json: temperature must be a positive number"):
        read_sidecar(path)


@pytest.mark.slow
def test_eager_compiled_and_int8_models_all_apply_the_temperature(tmp_path: Path, net: torch.nn.Module) -> None:
    """One place applies it (the inference module), so every precision and graph does; int8 quantizes the network
    and leaves the division by T to the float softmax after it."""
    quantization = images(16)
    for temperature in (1.0, 0.25):
        save_checkpoint(tmp_path / f"t{temperature}.pt", model=net, meta=meta(temperature=temperature),
                        quantization_images=quantization)
    batch = images(8)

    def probabilities(temperature: float, **options: object) -> torch.Tensor:
        classifier = Classifier.load(tmp_path / f"t{temperature}.pt", device="cpu", **options)  # type: ignore[arg-type]
        assert classifier.temperature == temperature
        return classifier.predict_tensors(batch)

    plain, sharp = probabilities(1.0, precision="fp32"), probabilities(0.25, precision="fp32")
    assert torch.allclose(sharp, rescale(plain, temperature=1.0, to=0.25), atol=1e-4)
    assert (sharp.max(dim=1).values - plain.max(dim=1).values).abs().max() > 0.05  # the temperature shows
    assert torch.equal(sharp.argmax(dim=1), plain.argmax(dim=1))
    compiled = probabilities(0.25, precision="fp32", compile=True, batch_size=8)
    assert torch.allclose(compiled, sharp, atol=1e-3)
    int8_plain, int8_sharp = (probabilities(t, precision="int8", batch_size=8) for t in (1.0, 0.25))
    assert torch.allclose(int8_sharp, rescale(int8_plain, temperature=1.0, to=0.25), atol=1e-4)
    assert torch.allclose(int8_sharp.sum(dim=1), torch.ones(8), atol=1e-4)


@pytest.mark.slow
def test_training_fits_the_temperature_on_its_validation_split(trained_checkpoint: Path,
                                                               eurosat_subset: Path) -> None:
    stored = read_checkpoint(trained_checkpoint).meta.temperature
    assert stored != 1.0 and read_sidecar(trained_checkpoint).temperature == stored
    record = json.loads((trained_checkpoint.parent / "metrics.json").read_text())["calibration"]
    assert record["temperature"] == stored and record["nll_after"] <= record["nll_before"]
    # The same split that training validated on (seeded and stratified, fit's defaults), classified here in fp32:
    # fitted again, the same temperature within the rounding of training's bf16 forward passes.
    data = load_images(scan_image_folder(eurosat_subset).samples, size=64)
    _, val_idx = stratified_split(data.labels, val_fraction=0.2, seed=0)
    classifier = Classifier.load(trained_checkpoint, device="cpu", precision="fp32")
    assert classifier.class_names == list(SUBSET_CLASSES)
    probabilities = classifier.predict_tensors(data.images[val_idx])
    refitted = fit_temperature(scores_from(probabilities, classifier.temperature), data.labels[val_idx])
    assert refitted == pytest.approx(stored, rel=0.05)
    assert torch.allclose(calibrated_softmax(scores_from(probabilities, stored), stored), probabilities, atol=1e-5)
