"""The one checkpoint format, and the only way tileclass loads one.

``NAME.pt`` is a ``torch.save`` of plain containers and tensors, so ``torch.load(weights_only=True)`` reads it
without running any pickled code::

    {"format": "tileclass-checkpoint/1",
     "meta": {"arch": "resnet18", "class_names": ["AnnualCrop", ...], "image_size": 64,
              "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "head": "linear",
              "fill_pixel": [118, 120, 98],   # the training data's mean pixel (model/inputs.py)
              "train_config": {...TrainConfig fields...}, "metrics": {"val_accuracy": 0.97, ...},
              "temperature": 1.3, "format": "tileclass-checkpoint/1"},
     "state_dict": {"conv1.weight": tensor, ..., "fc.weight": tensor},
     "quantization_images": uint8 tensor (N, 3, H, W)}  # optional: training images that set int8 ranges

``temperature`` (model/calibration.py) divides the network's outputs before the softmax, so that a confidence of
0.9 is right about 9 times in 10; a checkpoint saved before it existed reads as 1.0 (the network's own softmax).
``quantization_images`` are what int8 quantization observes (model/quantize.py); files saved before the name
changed hold them under ``"calibration"``, which is still read.

Beside it, ``NAME.json`` is the sidecar (``core.sidecar``) that the registry reads without torch (format, sha256
of NAME.pt, arch, class_names, image_size, metrics, temperature). Loading checks the format, that every key and
shape matches the architecture and head the metadata names, and that the head has one output per class name.
Anything else — a pickled whole model as the PyTorch tutorial saves it, a truncated copy, a bare state_dict — is
refused with one line that says what to do. Nothing ever falls back to ``weights_only=False``.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from core.sidecar import SIDECAR_FORMAT, file_sha256, sidecar_path, sidecar_text
from model.arch import build_model, head_output_key, strip_prefixes
from model.config import ARCHS, HEADS
from model.errors import CheckpointError, DataError
from model.inputs import DEFAULT_FILL, Fill, check_fill
from model.safe_load import safe_torch_load

CHECKPOINT_FORMAT = SIDECAR_FORMAT
MAX_QUANTIZATION_IMAGES = 1024
# What older checkpoints call their quantization images (the word now means the temperature).
_OLD_QUANTIZATION_KEY = "calibration"


@dataclass(frozen=True)
class CheckpointMeta:
    """Everything inference needs besides the weights.

    Attributes:
        arch: torchvision architecture name (``model.arch.ARCHS``).
        class_names: output index -> class name.
        image_size: square input size in pixels the model was trained at.
        mean: per-channel normalisation mean (RGB, 0..1 scale).
        std: per-channel normalisation standard deviation.
        head: classification head layout (``model.arch.HEADS``).
        train_config: the ``TrainConfig`` fields the model was trained with.
        metrics: summary validation metrics.
        temperature: the softmax temperature fitted on validation images (model/calibration.py); 1.0: none.
        fill_pixel: the training data's mean pixel (uint8 RGB), which the pixels of a tile without data become
            (``model.inputs``); checkpoints from before it get ``DEFAULT_FILL``, the ImageNet mean pixel.
        format: the checkpoint format version.
    """

    arch: str
    class_names: tuple[str, ...]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    head: str = "linear"
    train_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0
    fill_pixel: Fill = DEFAULT_FILL
    format: str = CHECKPOINT_FORMAT

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists, not tuples), as stored in the checkpoint."""
        data = asdict(self)
        return data | {"class_names": list(self.class_names), "mean": list(self.mean), "std": list(self.std),
                       "fill_pixel": list(self.fill_pixel)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointMeta:
        try:
            mean, std = tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"])
            if len(mean) != 3 or len(std) != 3:
                raise ValueError("mean and std need 3 values")
            temperature = float(data.get("temperature", 1.0))
            if not math.isfinite(temperature) or temperature <= 0:
                raise ValueError(f"temperature must be a positive number, not {temperature}")
            return cls(
                arch=str(data["arch"]), class_names=tuple(str(c) for c in data["class_names"]),
                image_size=int(data["image_size"]), mean=(mean[0], mean[1], mean[2]), std=(std[0], std[1], std[2]),
                head=str(data.get("head", "linear")), train_config=dict(data.get("train_config") or {}),
                metrics=dict(data.get("metrics") or {}), temperature=temperature,
                format=str(data.get("format", CHECKPOINT_FORMAT)),
                fill_pixel=check_fill(data.get("fill_pixel", DEFAULT_FILL)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint metadata is incomplete or malformed ({exc.__class__.__name__}: {exc})"
            ) from None


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: metadata, the bare network's weights, and its quantization images (possibly none)."""

    meta: CheckpointMeta
    state_dict: dict[str, torch.Tensor]
    quantization_images: torch.Tensor


def save_checkpoint(path: Path, *, model: nn.Module, meta: CheckpointMeta,
                    quantization_images: torch.Tensor | None = None) -> str:
    """Write ``path`` and its JSON sidecar atomically; returns the checkpoint file's sha256.

    The model may be wrapped (DataParallel, torch.compile, ``model.transforms.Normalized``): prefixes are stripped
    so that the keys are those of the bare torchvision network. ``quantization_images``: uint8 (N, 3, H, W)
    training images kept for int8 quantization.
    """
    state = strip_prefixes(_bare(model).state_dict())
    return write_checkpoint(path, state_dict=state, meta=meta, quantization_images=quantization_images)


def write_checkpoint(path: Path, *, state_dict: dict[str, torch.Tensor], meta: CheckpointMeta,
                     quantization_images: torch.Tensor | None = None) -> str:
    """``save_checkpoint`` from the bare network's weights (e.g. a ``read_checkpoint``'s)."""
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    _check_state(state, meta, source=path.name)
    payload: dict[str, Any] = {"format": CHECKPOINT_FORMAT, "meta": meta.to_dict(), "state_dict": state}
    if quantization_images is not None:
        payload["quantization_images"] = _check_quantization_images(
            quantization_images.detach().to("cpu").contiguous().clone(), source=path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: torch.save(payload, handle))
    digest = file_sha256(path)
    text = sidecar_text(sha256=digest, arch=meta.arch, class_names=meta.class_names, image_size=meta.image_size,
                        metrics=meta.metrics, temperature=meta.temperature)
    atomic_write(sidecar_path(path), lambda handle: handle.write(text.encode()))
    return digest


def read_checkpoint(path: Path, data: bytes | None = None) -> Checkpoint:
    """Read and verify a checkpoint written by ``save_checkpoint`` (from ``data``, its bytes, when given).

    Raises:
        CheckpointError: missing, unsafe, corrupt, or inconsistent (one line that says what to do).
    """
    loaded = safe_torch_load(path, data)
    if not isinstance(loaded, dict) or "state_dict" not in loaded or "meta" not in loaded:
        if isinstance(loaded, dict) and loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
            raise CheckpointError(
                f"{path.name} is a bare state_dict without class names or preprocessing: use it as "
                "'tileclass train --weights PATH' to start training from it, "
                "or save with model.checkpoint.save_checkpoint"
            )
        raise CheckpointError(f"{path.name} is not a tileclass checkpoint (no 'meta' and 'state_dict'): "
                              "re-create it with 'tileclass train'")
    if loaded.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path.name} has checkpoint format {loaded.get('format')!r}, this tileclass reads "
                              f"{CHECKPOINT_FORMAT!r}: re-create it with this version's 'tileclass train'")
    if not isinstance(loaded["meta"], dict) or not isinstance(loaded["state_dict"], dict):
        raise CheckpointError(f"{path.name}: 'meta' and 'state_dict' must be mappings; "
                              "re-create it with 'tileclass train'")
    meta = CheckpointMeta.from_dict(loaded["meta"])
    state = strip_prefixes(loaded["state_dict"])
    _check_state(state, meta, source=path.name)
    images = loaded.get("quantization_images", loaded.get(_OLD_QUANTIZATION_KEY))
    if images is None:
        images = torch.empty(0, 3, meta.image_size, meta.image_size, dtype=torch.uint8)
    return Checkpoint(meta, state, _check_quantization_images(images, source=path.name))


def _bare(model: nn.Module) -> nn.Module:
    """Unwrap torch.compile, DataParallel and Normalized wrappers down to the torchvision network."""
    from model.transforms import Normalized

    while True:
        if hasattr(model, "_orig_mod"):
            model = cast(nn.Module, model._orig_mod)
        elif isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
            model = model.module
        elif isinstance(model, Normalized):
            model = model.net
        else:
            return model


def _check_quantization_images(images: Any, *, source: str) -> torch.Tensor:
    if (not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4
            or images.shape[1] != 3 or len(images) > MAX_QUANTIZATION_IMAGES):
        found = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise CheckpointError(f"{source}: its quantization images must be a uint8 (N, 3, H, W) tensor with N <= "
                              f"{MAX_QUANTIZATION_IMAGES}, not {found}: re-create it with 'tileclass train'")
    return images


def _check_state(state: dict[str, Any], meta: CheckpointMeta, *, source: str) -> None:
    if meta.arch not in ARCHS or meta.head not in HEADS:
        raise CheckpointError(f"{source}: unknown arch {meta.arch!r} or head {meta.head!r} "
                              f"(this tileclass knows {', '.join(ARCHS)} with heads {', '.join(HEADS)})")
    if len(meta.class_names) < 2 or len(set(meta.class_names)) != len(meta.class_names):
        raise CheckpointError(f"{source}: class list {list(meta.class_names)!r} must hold 2 or more distinct names")
    out_key = head_output_key(meta.head)
    head = state.get(out_key)
    if isinstance(head, torch.Tensor) and head.dim() == 2 and head.shape[0] != len(meta.class_names):
        raise CheckpointError(
            f"{source}: its head has {head.shape[0]} outputs but its class list names {len(meta.class_names)} "
            "classes; the file was edited or mixed up: re-create it with 'tileclass train'"
        )
    try:
        with torch.device("meta"):
            expected = build_model(meta.arch, len(meta.class_names), head=meta.head).state_dict()
    except DataError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"missing keys {missing[:3]}" if missing else f"unexpected keys {unexpected[:3]}"
        raise CheckpointError(f"{source}: weights do not match {meta.arch} with a {meta.head} head ({what}); "
                              "re-create it with 'tileclass train'")
    for key, tensor in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(f"{source}: {key} has shape {shape}, {meta.arch} needs {tuple(tensor.shape)}; "
                                  "re-create it with 'tileclass train'")


def atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder and rename, so readers never see half a file."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115  (closed below, before the rename)
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
