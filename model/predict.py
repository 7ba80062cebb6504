"""Batched prediction with a checkpoint: what the worker and ``tileclass predict`` use.

The pipeline is uint8 end to end until the device: decode (``model.images``: RGB pixels and which hold data),
the one model input (``model.inputs.model_input``: pixels without data set to the checkpoint's fill pixel, one
resize to its size; ``Classifier.decode``, ``preprocess`` and ``model_input`` call it), stack, then one forward
pass of an inference module that
normalises, runs the network in channels_last under bf16 autocast where the device computes bf16 (or quantized to
int8 on the CPU, see model/quantize.py), and returns float32 probabilities: the softmax of the network's scores
divided by the checkpoint's temperature (model/calibration.py; 1.0 for a model never calibrated), averaged over
flipped and turned views of each image with test-time augmentation (model/tta.py). Preprocessing comes from the
checkpoint, never from constants here.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from model.arch import build_model
from model.calibration import calibrated_softmax
from model.checkpoint import read_checkpoint
from model.device import autocast, resolve_device, resolve_inference_precision
from model.errors import CheckpointError, ChecksumMismatch
from model.images import DEFAULT_MAX_PIXELS, DecodedTile, image_tile
from model.inputs import DEFAULT_FILL, Fill, ModelInput, decode_input, model_input
from model.transforms import Normalized, pad_to, resize
from model.tta import check_views, dihedral_view

log = logging.getLogger(__name__)
# int8 needs a fixed batch size; this one when the caller names none (the worker's default chunk).
DEFAULT_INT8_BATCH = 16


@dataclass(frozen=True)
class Prediction:
    """One image's result: the most likely class, its probability, and every class's probability."""

    label: str
    confidence: float
    probabilities: dict[str, float]

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` most likely classes with their probabilities, most likely first."""
        return sorted(self.probabilities.items(), key=lambda item: item[1], reverse=True)[:k]


class _Probabilities(nn.Module):
    """uint8 images in, float32 calibrated class probabilities out: ``softmax(scores / temperature)``.

    The one place the checkpoint's temperature is applied, so that every caller (``predict``, ``eval``, the
    workers, the GPU path, int8 and compiled graphs, which trace this module) gets calibrated probabilities
    without knowing about it. Works for logits and log-probabilities alike (see model/calibration.py).
    """

    def __init__(self, net: nn.Module, temperature: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.temperature = float(temperature)  # a constant in traced graphs: the model never changes it

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return calibrated_softmax(self.net(images), self.temperature)


@dataclass(frozen=True)
class PendingProbabilities:
    """A batch's probabilities on their way back from the device (``Classifier.launch``)."""

    probabilities: torch.Tensor  # float32 (N, C) on the CPU; on CUDA, filled in when ``ready`` has passed
    ready: torch.cuda.Event | None

    def result(self) -> torch.Tensor:
        """The probabilities, once the device has finished them (a device failure surfaces here or at launch)."""
        if self.ready is not None:
            self.ready.synchronize()
        return self.probabilities


class Classifier:
    """A loaded checkpoint ready for batched inference; build it with ``Classifier.load``."""

    def __init__(self, module: nn.Module, *, class_names: Sequence[str], image_size: int, device: torch.device,
                 precision: str, sha256: str, batch_size: int | None = None, tta_views: int = 1,
                 temperature: float = 1.0,
                 input_fill: Fill = DEFAULT_FILL) -> None:
        self.module = module
        self.class_names = list(class_names)
        self.image_size = image_size
        self.temperature = temperature  # what the inference module divides the scores by (for reports)
        self.input_fill = input_fill  # what pixels without data become: the training data's mean pixel
        self.device = device
        self.precision = precision
        self.sha256 = sha256
        self.batch_size = batch_size
        self.tta_views = check_views(tta_views)
        self.compiled = False
        self._copy_stream: torch.cuda.Stream | None = None  # made on the first upload to a CUDA device

    @classmethod
    def load(cls, path: Path, *, device: str = "auto", precision: str = "auto", expected_sha256: str | None = None,
             compile: bool = False, batch_size: int | None = None, tta_views: int = 1,
             compile_mode: str | None = None) -> Classifier:
        """Load ``path`` for inference.

        Args:
            path: a checkpoint written by ``model.checkpoint.save_checkpoint``.
            device: auto, cpu, cuda or cuda:N.
            precision: auto (bf16 where the device computes it natively), fp32, bf16, or int8 (CPU only: quantized
                with the checkpoint's quantization images; needs torchao; always compiled).
            expected_sha256: refuse the file unless its content hash is this (the registry's hash of the model).
            compile: run the network through torch.compile (inductor, weights frozen as constants); falls back to
                eager with a warning when compilation fails.
            batch_size: with compile or int8, the one batch size the graph is built for (the worker's chunk size):
                larger batches run in chunks of it and a short one is padded, which lets oneDNN pick kernels for
                the exact shape (int8 runs at about twice the speed of a graph of dynamic shape). None: any batch size.
            tta_views: 1 (no test-time augmentation), or 2, 4 or 8 flipped and turned views of each image whose
                probabilities are averaged (model/tta.py); each view costs one more forward pass.
            compile_mode: with compile, torch.compile's mode: None (its default), "reduce-overhead" (CUDA graphs,
                with a fixed batch_size) or "max-autotune"; bench/gpu_check.py --compile-mode measures them.

        Raises:
            CheckpointError: the file is refused (see ``read_checkpoint``), its hash is not ``expected_sha256``, or
                int8 was asked of a checkpoint without quantization images.
            DeviceError: the device or precision is not available here.
        """
        check_views(tta_views)
        if not path.is_file():
            raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
        data = path.read_bytes()  # hashed and loaded from the same bytes: no window to swap the file in between
        digest = hashlib.sha256(data).hexdigest()
        if expected_sha256 is not None and digest != expected_sha256.lower():
            raise ChecksumMismatch(f"{path.name} has sha256 {digest[:12]}…, expected {expected_sha256[:12]}…: "
                                   "the file was changed or is a different model; register it again")
        checkpoint = read_checkpoint(path, data)
        meta = checkpoint.meta
        torch_device = resolve_device(device)
        resolved = resolve_inference_precision(precision, torch_device)
        net = build_model(meta.arch, len(meta.class_names), head=meta.head)
        net.load_state_dict(checkpoint.state_dict)
        module: nn.Module = _Probabilities(Normalized(net, meta.mean, meta.std), meta.temperature)
        module = module.to(torch_device).to(memory_format=torch.channels_last).eval().requires_grad_(False)
        if resolved == "int8":
            from model.quantize import quantize

            batch_size = batch_size or DEFAULT_INT8_BATCH
            module = quantize(module, resize(checkpoint.quantization_images, meta.image_size), batch_size=batch_size)
        compile = compile or resolved == "int8"  # int8's graph runs at reference speed until inductor lowers it
        classifier = cls(module, class_names=meta.class_names, image_size=meta.image_size, device=torch_device,
                         precision=resolved, sha256=digest, batch_size=batch_size if compile else None,
                         tta_views=tta_views, temperature=meta.temperature, input_fill=meta.fill_pixel)
        if compile:
            classifier._compile(compile_mode)
        return classifier

    def model_input(self, decoded: DecodedTile) -> torch.Tensor:
        """A decoded tile as this model's uint8 (3, S, S) input (``model.inputs.model_input``)."""
        return model_input(decoded, size=self.image_size, fill=self.input_fill)

    def preprocess(self, image: DecodedTile | Image.Image) -> torch.Tensor:
        """A decoded tile, or a decoded Pillow image of any mode, as this model's input."""
        return self.model_input(image if isinstance(image, DecodedTile) else image_tile(image))

    def decode(self, data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ModelInput:
        """A tile file's bytes as this model's input, with their coverage (``model.inputs.decode_input``).

        Raises:
            ImageError: not a usable image; EmptyImage: every pixel is transparent.
        """
        return decode_input(data, size=self.image_size, fill=self.input_fill, max_pixels=max_pixels)

    def predict_tensors(self, batch: torch.Tensor) -> torch.Tensor:
        """Class probabilities, float32 (N, C) on the CPU, for a uint8 (N, 3, S, S) batch (averaged over the
        test-time augmentation views, if any)."""
        return self.launch(batch).result()

    def launch(self, batch: torch.Tensor) -> PendingProbabilities:
        """Start ``predict_tensors`` on ``batch`` and return without waiting for a CUDA device to finish it.

        The worker launches chunk k+1 (its upload runs on a copy stream beside chunk k's compute) before it
        collects chunk k's result, so the device never waits for the host between chunks. On the CPU the work is
        done when this returns.
        """
        if batch.dtype != torch.uint8 or batch.dim() != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected a uint8 (N, 3, H, W) batch, got {batch.dtype} {tuple(batch.shape)}")
        if self.device.type == "cuda" and batch.device.type == "cpu":  # (tiles decoded on the GPU are there already)
            batch = self._upload(batch)
        if self.tta_views == 1:
            probabilities = self._predict_view(batch)
        else:
            probabilities = torch.stack([self._predict_view(dihedral_view(batch, index))
                                         for index in range(self.tta_views)]).mean(dim=0)
        if self.device.type != "cuda":
            return PendingProbabilities(probabilities, None)
        # A non-blocking copy to the CPU lands in pinned memory; the event says when it has.
        on_host = probabilities.to("cpu", non_blocking=True)
        ready = torch.cuda.Event()
        ready.record(torch.cuda.current_stream(self.device))
        return PendingProbabilities(on_host, ready)

    def _predict_view(self, batch: torch.Tensor) -> torch.Tensor:
        count = batch.shape[0]
        if count == 0:
            return torch.empty(0, len(self.class_names), device=self.device)
        if self.batch_size is not None:
            size = self.batch_size
            return torch.cat([self._forward(pad_to(batch[start : start + size], size))[: min(size, count - start)]
                              for start in range(0, count, size)])
        if count == 1 and self.compiled:
            # A batch of one would need a graph of its own (dynamo specialises size 1): run it as two.
            return self._forward(batch.expand(2, -1, -1, -1))[:1]
        return self._forward(batch)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """float32 probabilities, left on the model's device."""
        batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(self.device, self.precision):
            probabilities = self.module(batch)
        return probabilities.float()

    def _upload(self, batch: torch.Tensor) -> torch.Tensor:
        """Copy a CPU batch to the device from pinned memory on a stream of its own, so that it overlaps the
        compute already queued (the previous chunk's); the compute stream waits for the copy, nothing else does."""
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(self.device)
        compute = torch.cuda.current_stream(self.device)
        pinned = batch.pin_memory()
        with torch.cuda.stream(self._copy_stream):
            on_device = pinned.to(self.device, non_blocking=True)
        compute.wait_stream(self._copy_stream)
        # Allocated on the copy stream, used on the compute stream: the allocator must not reuse it before that ends.
        on_device.record_stream(compute)
        return on_device

    def to_predictions(self, probabilities: torch.Tensor) -> list[Prediction]:
        """One ``Prediction`` per row of an (N, C) probability tensor."""
        rows = probabilities.tolist()
        predictions = []
        for row in rows:
            best = max(range(len(row)), key=row.__getitem__)
            predictions.append(Prediction(self.class_names[best], float(row[best]),
                                          dict(zip(self.class_names, map(float, row), strict=True))))
        return predictions

    def predict_batch(self, images: Sequence[DecodedTile | Image.Image], *,
                      batch_size: int = 256) -> list[Prediction]:
        """Predictions for decoded tiles or Pillow images of any mode and size, in order."""
        predictions: list[Prediction] = []
        for start in range(0, len(images), batch_size):
            chunk = torch.stack([self.preprocess(image) for image in images[start : start + batch_size]])
            predictions.extend(self.to_predictions(self.predict_tensors(chunk)))
        return predictions

    def _compile(self, mode: str | None = None) -> None:
        """torch.compile the inference module, proven on a warm-up batch; eager stays on any failure."""
        import torch._inductor.config as inductor_config

        # Freezing lets inductor treat the weights as constants (folds BatchNorm into convolutions, prepacks
        # oneDNN weights on CPU); safe because the module never trains again.
        inductor_config.freezing = True
        eager = self.module
        try:
            # Without a fixed batch size, dynamic=True compiles one graph for every batch size >= 2 (the warm-up
            # below) instead of one per size.
            self.module = torch.compile(eager, dynamic=self.batch_size is None, mode=mode)  # type: ignore[assignment]
            self.compiled = True
            self._predict_view(torch.zeros(self.batch_size or 2, 3, self.image_size, self.image_size,
                                             dtype=torch.uint8))
        except Exception as exc:  # compilation can fail in many ways (no compiler, unsupported op); eager still works
            log.warning("torch.compile failed (%s: %s); predicting in eager mode",
                        exc.__class__.__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
            self.module, self.compiled = eager, False
