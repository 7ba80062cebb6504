"""The one way from decoded pixels to the model's input, and the coverage rule that decides whether a tile has one.

``model_input`` is the only function that makes the uint8 (3, S, S) tensor the network sees, from any
``model.images.DecodedTile``: its pixels without data (alpha 0, a raster's nodata) are set to ``fill``, then
``model.transforms.resize`` brings it to the model's size, once. Training and validation (``model.data``),
``tileclass predict`` and ``eval``, the worker's CPU decode (fast and Pillow paths) and its GPU decode (nvJPEG, then
the same function: its float resize on the device is within 1 level per pixel of the CPU's) and every tile source
(folders, MBTiles, PMTiles, GeoTIFF/COG, tile servers: they all hand bytes to ``model.images``) go through it.
This is timm's single eval transform (``resolve_data_config`` / ``create_transform``), for tiles.

``fill`` is the training data's mean pixel, computed at training time and kept in the checkpoint
(``CheckpointMeta.fill_pixel``): a pixel that looks like no class in particular, where black looks like water or
shadow. Checkpoints from before it use ``DEFAULT_FILL``, the ImageNet mean pixel.

Coverage (``DecodedTile.coverage``, the share of pixels with data) below a bound (``TILECLASS_MIN_COVERAGE``) makes
a tile empty, with the reason ``coverage_shortfall`` words (``partial: 6% data``); at or above it, the tile is
classified on the fill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from model.images import DEFAULT_MAX_PIXELS, DecodedTile, decoding_tile
from model.transforms import resize

Fill = tuple[int, int, int]
# The ImageNet mean pixel (0.485, 0.456, 0.406) x 255, rounded: the fill of checkpoints that do not store their own.
DEFAULT_FILL: Fill = (124, 116, 104)
# Below this share of pixels with data a tile is empty (``TILECLASS_MIN_COVERAGE``'s default, in core/settings.py).
DEFAULT_MIN_COVERAGE = 0.5


@dataclass(frozen=True)
class ModelInput:
    """A tile's model input, uint8 (3, S, S), and the share of its pixels that held data."""

    tensor: torch.Tensor
    coverage: float = 1.0


def model_input(decoded: DecodedTile, *, size: int, fill: Fill) -> torch.Tensor:
    """THE model input of a decoded tile: pixels without data set to ``fill``, then resized to ``size`` x ``size``.

    Works on any device (a tile decoded on the GPU stays there).
    """
    pixels = decoded.pixels
    if decoded.valid is not None:
        colour = torch.tensor(fill, dtype=torch.uint8, device=pixels.device).view(3, 1, 1)
        pixels = torch.where(decoded.valid.to(pixels.device), pixels, colour)
    return resize(pixels, size)


def decode_input(data: bytes, *, size: int, fill: Fill, max_pixels: int = DEFAULT_MAX_PIXELS) -> ModelInput:
    """A tile file's bytes decoded (``model.images.decoding_tile``) and made the model's input, with its coverage.

    Raises:
        ImageError: the bytes are no usable image; EmptyImage: every pixel is transparent.
    """
    with decoding_tile(data, max_pixels=max_pixels) as decoded:
        return ModelInput(model_input(decoded, size=size, fill=fill), decoded.coverage)


def coverage_shortfall(coverage: float, *, min_coverage: float) -> str | None:
    """Why a tile with ``coverage`` is empty under the bound ``min_coverage`` (``partial: 6% data``: the percent
    rounded down, so that it never reads as the bound itself), or None when it is classified."""
    return None if coverage >= min_coverage else partial(coverage)


def partial(coverage: float) -> str:
    """How a tile with ``coverage`` below 1 is described: ``partial: 6% data`` (rounded down: 99.9% is not 100)."""
    return f"partial: {math.floor(round(coverage * 100, 6))}% data"


def pixel_sums(decoded: DecodedTile) -> tuple[torch.Tensor, int]:
    """Per-channel sums (int64) over a tile's pixels with data, and how many there are: what ``mean_pixel`` of a
    whole data set adds up."""
    pixels = decoded.pixels if decoded.valid is None else torch.where(decoded.valid, decoded.pixels, 0)
    count = decoded.pixels[0].numel() if decoded.valid is None else int(decoded.valid.count_nonzero())
    return pixels.sum(dim=(1, 2), dtype=torch.int64), count


def mean_pixel(sums: torch.Tensor, count: int) -> Fill:
    """The mean pixel from per-channel sums over ``count`` pixels (``DEFAULT_FILL`` when there are none)."""
    if count == 0:
        return DEFAULT_FILL
    red, green, blue = (min(255, max(0, round(float(value) / count))) for value in sums)
    return red, green, blue


def check_fill(value: object) -> Fill:
    """``value`` as a fill pixel: three integers 0..255 (``ValueError`` otherwise)."""
    if (not isinstance(value, list | tuple) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)):
        raise ValueError(f"a fill pixel is 3 integers 0..255, not {value!r}")
    return value[0], value[1], value[2]
