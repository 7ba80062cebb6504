"""Decoding JPEG tiles on the GPU (nvJPEG through torchvision), each tile falling back to the CPU path.

At GPU speed the host's decoding can become the limit (a 224 px JPEG costs about 0.25 ms of a core; a ResNet50 in
bf16 classifies 10,000+ images a second). With device decoding, the pool threads only read a tile's bytes; the
main thread sends a chunk's JPEGs to the device in one batched ``decode_jpeg`` call and makes their model input
there through the one function every path uses (``model.inputs.model_input``: a JPEG has no pixel without data, so
that is its float resize on the device, within 1 level per pixel of the CPU's uint8 resize), so only the compressed
bytes cross to the device.

Only what the CPU path's own fast lane decodes (an 8-bit, 3-component JPEG with its end marker, within
``max_pixels``: ``model.image_headers.fast_path_size``) goes to the device. Other formats and kinds of JPEG are
decoded on the CPU in the pool as before, and a tile the device decoder refuses is decoded on the CPU alone, so
the failure rules are the CPU path's: a bad tile fails by itself with the CPU decoder's reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from core.errors import HostError
from core.sources import TileAbsent, TileUnreadable
from model.image_headers import JPEG_SOI, fast_path_size
from model.images import DecodedTile
from model.inputs import ModelInput
from model.torchvision_io import decoders

if TYPE_CHECKING:
    from model.predict import Classifier


@dataclass(frozen=True)
class DeviceJpeg:
    """A tile's bytes that the pool read and left for the device to decode."""

    data: bytes


def uses_device_decode(setting: str, device: torch.device) -> bool:
    """Whether a worker whose model runs on ``device`` decodes JPEGs there (``TILECLASS_WORKER_DECODE``)."""
    if setting == "cpu":
        return False
    if device.type == "cuda":
        return True
    if setting == "gpu":  # the host's configuration, not any tile's fault: the batch goes back to the queue
        raise HostError(f"TILECLASS_WORKER_DECODE=gpu needs the model on a CUDA device, and it runs on {device}; "
                        "set auto or cpu")
    return False


def device_decodable(data: bytes, *, max_pixels: int) -> bool:
    """A JPEG the device decodes exactly as the CPU path would (anything else stays on the CPU)."""
    if data[:3] != JPEG_SOI:
        return False
    size = fast_path_size(data)
    return size is not None and size[0] * size[1] <= max_pixels


def decode_jpegs_on_device(datas: Sequence[bytes], device: torch.device) -> list[torch.Tensor]:
    """The one call into nvJPEG: uint8 (3, H, W) RGB tensors on ``device``, in order; raises if it refuses any."""
    io = decoders()
    encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in datas]
    return list(io.decode_jpeg(encoded, mode=io.ImageReadMode.RGB, device=device))


def decode_chunk(datas: Sequence[bytes], classifier: Classifier,
                 cpu_decode: Callable[[bytes], ModelInput]) -> list[ModelInput | TileUnreadable | TileAbsent]:
    """Each JPEG of a chunk decoded into the model's input, on its device where it can be (coverage 1: a JPEG has
    no transparency).

    One batched call first; if the device refuses it, each tile alone, so that one bad file costs only itself. A
    tile the device refuses is decoded by ``cpu_decode`` (the CPU path); its error, if it fails there too, takes the
    tile's place in the list, for the caller to record as that tile's failure.
    """
    if not datas:
        return []
    try:
        decoded: list[torch.Tensor | None] = list(decode_jpegs_on_device(datas, classifier.device))
    except RuntimeError:
        decoded = [_alone(data, classifier.device) for data in datas]
    results: list[ModelInput | TileUnreadable | TileAbsent] = []
    for data, tensor in zip(datas, decoded, strict=True):
        if tensor is not None:
            results.append(ModelInput(classifier.model_input(DecodedTile(tensor))))
            continue
        try:
            results.append(cpu_decode(data))
        except (TileUnreadable, TileAbsent) as exc:  # the CPU path's per-tile outcome, recorded by the caller
            results.append(exc)
    return results


def _alone(data: bytes, device: torch.device) -> torch.Tensor | None:
    try:
        return decode_jpegs_on_device([data], device)[0]
    except RuntimeError:
        return None
