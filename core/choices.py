"""The choices every part of tileclass accepts, defined once: devices, precisions and image file extensions.

The settings, ``model.config.TrainConfig``, ``model.device`` and the worker launcher all validate against these,
and their error messages list them, so a new device or precision is added here and nowhere else. This module
imports nothing but the standard library: model/ (which must not load the database or the queue) uses it too.
"""

from __future__ import annotations

import re

from core.errors import TileclassError

# Where a process runs its model: "auto" is CUDA when present, else the CPU; "cuda:N" names one GPU.
DEVICE_KINDS = ("auto", "cpu", "cuda")
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
# Training computes in fp32 or bf16 autocast; inference may also run quantized to int8 (CPU only).
TRAIN_PRECISIONS = ("auto", "fp32", "bf16")
INFERENCE_PRECISIONS = (*TRAIN_PRECISIONS, "int8")
# Where workers decode JPEG tiles: "auto" is on the GPU (nvJPEG) when the model runs on CUDA, else on the CPU.
DECODE_CHOICES = ("auto", "cpu", "gpu")
# What a tile file may be (the layouts' {ext}); training folders may hold more kinds of image.
TILE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
IMAGE_EXTENSIONS = (*TILE_EXTENSIONS, ".tif", ".tiff", ".bmp", ".gif")
# The only decoders a tile ever reaches (Pillow's format names), whatever its name says: Pillow knows many more,
# some of them dangerous (EPS runs Ghostscript on the file's PostScript).
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "GIF")


def is_device(name: str) -> bool:
    """Whether ``name`` spells a device (``auto``, ``cpu``, ``cuda`` or ``cuda:N``)."""
    return bool(_DEVICE.match(name))


def check_choice(what: str, value: str, choices: tuple[str, ...], *,
                 error: type[TileclassError] = TileclassError) -> str:
    """``value`` when it is one of ``choices``, else ``error`` with a message that lists them."""
    if value not in choices:
        raise error(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")
    return value
