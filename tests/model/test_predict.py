"""The batched Classifier on a briefly trained real model: modes, probabilities, bf16/int8 vs fp32, compile."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.device import resolve_inference_precision, supports_bf16
from model.errors import DeviceError, QuantizationImagesMissing
from model.images import decode_tile, open_image
from model.predict import Classifier
from tests.conftest import EUROSAT, SUBSET_CLASSES
from tests.worker.support import tiny_checkpoint

# Every test here uses the session's trained model (trained once, about 20 s).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def held_out() -> tuple[torch.Tensor, torch.Tensor]:
    """400 real EuroSAT patches (100 per class) that the session's model never saw in training."""
    images, labels = [], []
    for label, name in enumerate(SUBSET_CLASSES):
        for index in range(1001, 1101):
            images.append(decode_tile((EUROSAT / name / f"{name}_{index}.jpg").read_bytes()).pixels)
            labels.append(label)
    return torch.stack(images), torch.tensor(labels)


def test_load_exposes_what_the_worker_needs(trained_checkpoint: Path) -> None:
    classifier = Classifier.load(trained_checkpoint, device="cpu")
    assert classifier.class_names == list(SUBSET_CLASSES)
    assert classifier.image_size == 64 and classifier.device == torch.device("cpu")
    assert classifier.precision == ("bf16" if supports_bf16(torch.device("cpu")) else "fp32")
    assert Classifier.load(trained_checkpoint, device="cpu", precision="fp32").precision == "fp32"
    assert len(classifier.sha256) == 64


def test_probabilities_are_distributions_and_predictions_follow_them(
        trained_checkpoint: Path, held_out: tuple[torch.Tensor, torch.Tensor]) -> None:
    classifier = Classifier.load(trained_checkpoint, device="cpu")
    probabilities = classifier.predict_tensors(held_out[0][:10])
    assert probabilities.shape == (10, 4) and probabilities.dtype == torch.float32
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(10), atol=1e-4)
    predictions = classifier.to_predictions(probabilities)
    for row, prediction in zip(probabilities, predictions, strict=True):
        assert prediction.label == SUBSET_CLASSES[int(row.argmax())]
        assert prediction.confidence == pytest.approx(float(row.max()))
        assert prediction.top(2)[0] == (prediction.label, prediction.confidence)
    assert classifier.predict_tensors(held_out[0][:0]).shape == (0, 4)


def test_any_mode_and_size_gives_the_same_answer_as_rgb(trained_checkpoint: Path) -> None:
    classifier = Classifier.load(trained_checkpoint, device="cpu", precision="fp32")
    rgb = open_image(EUROSAT / "SeaLake" / "SeaLake_1001.jpg")
    opaque_rgba = rgb.convert("RGBA")
    palette = rgb.quantize(256).convert("P")
    grey = rgb.convert("L")
    bigger = rgb.resize((128, 128), Image.Resampling.NEAREST)
    results = classifier.predict_batch([rgb, opaque_rgba, palette, grey, bigger])
    assert results[1].probabilities == pytest.approx(results[0].probabilities, abs=1e-6)
    assert results[2].label == results[0].label and results[4].label == results[0].label
    assert set(results[3].probabilities) == set(SUBSET_CLASSES)
    assert torch.equal(classifier.preprocess(opaque_rgba), classifier.preprocess(rgb))
    assert classifier.preprocess(bigger).shape == (3, 64, 64)
    tile = decode_tile((EUROSAT / "SeaLake" / "SeaLake_1001.jpg").read_bytes())
    assert torch.equal(classifier.model_input(tile), classifier.preprocess(rgb))
    assert torch.equal(classifier.preprocess(tile), classifier.preprocess(rgb))


def test_bf16_and_fp32_agree_on_real_validation_images(
        trained_checkpoint: Path, held_out: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = held_out
    fp32 = Classifier.load(trained_checkpoint, device="cpu", precision="fp32").predict_tensors(images).argmax(1)
    bf16 = Classifier.load(trained_checkpoint, device="cpu", precision="bf16").predict_tensors(images).argmax(1)
    accuracy = float((fp32 == labels).float().mean())
    agreement = float((fp32 == bf16).float().mean())
    assert accuracy > 0.6, f"the session model should have learnt something (accuracy {accuracy:.3f})"
    assert agreement >= 0.99, f"bf16 and fp32 agree on only {agreement:.3%} of {len(labels)} images"


def test_int8_agrees_with_fp32_on_real_validation_images(
        trained_checkpoint: Path, held_out: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = held_out
    fp32 = Classifier.load(trained_checkpoint, device="cpu", precision="fp32").predict_tensors(images)
    int8 = Classifier.load(trained_checkpoint, device="cpu", precision="int8", batch_size=64)
    assert (int8.precision, int8.compiled, int8.batch_size) == ("int8", True, 64)
    quantized = int8.predict_tensors(images)
    agreement = float((fp32.argmax(1) == quantized.argmax(1)).float().mean())
    accuracy = [float((p.argmax(1) == labels).float().mean()) for p in (fp32, quantized)]
    assert agreement >= 0.97, f"int8 and fp32 agree on only {agreement:.3%} of {len(labels)} images"
    assert accuracy[1] >= accuracy[0] - 0.02, f"accuracy fp32 {accuracy[0]:.3f}, int8 {accuracy[1]:.3f}"
    assert torch.allclose(quantized.sum(dim=1), torch.ones(len(labels)), atol=1e-4)


def test_int8_is_refused_without_quantization_images_or_off_the_cpu(tmp_path: Path) -> None:
    with pytest.raises(QuantizationImagesMissing, match="holds no quantization images, which int8 needs"):
        Classifier.load(tiny_checkpoint(tmp_path), device="cpu", precision="int8")
    with pytest.raises(DeviceError, match="int8 runs on the CPU only, not on cuda"):
        resolve_inference_precision("int8", torch.device("cuda"))
    with pytest.raises(DeviceError, match="unknown precision 'fp16': choose one of auto, fp32, bf16, int8"):
        resolve_inference_precision("fp16", torch.device("cpu"))


def test_a_fixed_batch_size_pads_short_batches_and_splits_long_ones(
        trained_checkpoint: Path, held_out: tuple[torch.Tensor, torch.Tensor]) -> None:
    eager = Classifier.load(trained_checkpoint, device="cpu", precision="fp32")
    fixed = Classifier.load(trained_checkpoint, device="cpu", precision="fp32", compile=True, batch_size=4)
    for size in (9, 4, 1):
        batch = held_out[0][:size]
        assert torch.allclose(fixed.predict_tensors(batch), eager.predict_tensors(batch), atol=1e-3)


def test_compiled_classifier_matches_eager(trained_checkpoint: Path,
                                           held_out: tuple[torch.Tensor, torch.Tensor]) -> None:
    eager = Classifier.load(trained_checkpoint, device="cpu", precision="fp32")
    compiled = Classifier.load(trained_checkpoint, device="cpu", precision="fp32", compile=True)
    assert compiled.compiled
    for size in (32, 7, 1):  # one dynamic graph serves every batch size
        batch = held_out[0][:size]
        assert torch.allclose(compiled.predict_tensors(batch), eager.predict_tensors(batch), atol=1e-3)


def test_failed_compilation_falls_back_to_eager(trained_checkpoint: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    def broken_compile(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("no C++ compiler on this host")

    monkeypatch.setattr(torch, "compile", broken_compile)
    with caplog.at_level(logging.WARNING):
        classifier = Classifier.load(trained_checkpoint, device="cpu", compile=True)
    assert not classifier.compiled
    assert "torch.compile failed (RuntimeError: no C++ compiler on this host)" in caplog.text
    image = np.asarray(open_image(EUROSAT / "Forest" / "Forest_1001.jpg"))
    assert classifier.predict_batch([Image.fromarray(image)])[0].label in SUBSET_CLASSES
