"""Overlay grids (``core.queries.overlay``) as 256 px PNG tiles in the class colours of ``core.palette``.

A tile of one colour (at or below the results' zoom, and every tile with nothing in it) comes from a cache of
per-colour PNGs; a grid of blocks is a palette PNG (transparent where there is no result); a far-out grid with a
share per pixel is RGBA, its alpha the share of the result tiles under the pixel that are classified (an uncertain
answer counting half).

An uncertain answer (less confident than its job's ``--uncertain-below``) is drawn hatched: its class colour with
diagonal stripes left transparent (``hatch``), continuous across neighbouring uncertain cells, so that the map
under it shows through where the model is unsure.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

from core.palette import PALETTE, Colour, class_colour
from core.queries.overlay import OVERLAY_PX, OverlayGrid

# Zlib's fastest level: overlay tiles are runs of a few colours, which it already packs well.
COMPRESS_LEVEL = 1
HATCH_PERIOD = 8  # pixels from one diagonal stripe of an uncertain answer to the next
HATCH_GAP = 3  # pixels of each period left transparent


def overlay_png(grid: OverlayGrid) -> bytes:
    """The PNG of one overlay tile."""
    if grid.is_blank:
        return blank_png()
    if grid.codes.shape == (1, 1):
        colour = class_colour(int(grid.codes[0, 0]) - 1)
        uncertain = grid.uncertain is not None and bool(grid.uncertain[0, 0])
        return hatched_png(colour) if uncertain else solid_png(colour)
    if grid.alpha is None:
        return _blocks_png(grid.codes, grid.uncertain)
    return _shares_png(grid.codes, grid.alpha)


@lru_cache(maxsize=1)
def blank_png() -> bytes:
    """A fully transparent tile."""
    return _encode(Image.new("RGBA", (OVERLAY_PX, OVERLAY_PX), (0, 0, 0, 0)))


@lru_cache(maxsize=64)
def solid_png(colour: Colour) -> bytes:
    """A tile of one colour (the overlay's opacity is the map's to set, so it is opaque here)."""
    return _encode(Image.new("RGB", (OVERLAY_PX, OVERLAY_PX), colour))


@lru_cache(maxsize=64)
def hatched_png(colour: Colour) -> bytes:
    """A tile of one colour, hatched: an uncertain answer."""
    pixels = np.empty((OVERLAY_PX, OVERLAY_PX, 4), dtype=np.uint8)
    pixels[..., :3] = colour
    pixels[..., 3] = np.where(hatch(), 0, 255)
    return _encode(Image.fromarray(pixels, "RGBA"))


@lru_cache(maxsize=1)
def hatch() -> np.ndarray:
    """The tile's pixels that an uncertain answer leaves transparent: diagonal stripes (x + y within a period)."""
    rows, columns = np.indices((OVERLAY_PX, OVERLAY_PX))
    stripes = (rows + columns) % HATCH_PERIOD < HATCH_GAP
    stripes.flags.writeable = False
    return stripes


def _palette_indexes(codes: np.ndarray) -> np.ndarray:
    """Class codes as indexes of a palette whose entry 0 is transparent and 1.. are the class colours."""
    return np.where(codes > 0, (codes - 1) % len(PALETTE) + 1, 0).astype(np.uint8)


def _blocks_png(codes: np.ndarray, uncertain: np.ndarray | None) -> bytes:
    block = OVERLAY_PX // codes.shape[0]
    indexes = np.repeat(np.repeat(_palette_indexes(codes), block, axis=0), block, axis=1)
    if uncertain is not None and uncertain.any():
        unsure = np.repeat(np.repeat(uncertain, block, axis=0), block, axis=1)
        indexes[unsure & hatch()] = 0
    image = Image.fromarray(indexes, "P")
    image.putpalette([0, 0, 0, *(channel for colour in PALETTE for channel in colour)])
    image.info["transparency"] = 0
    return _encode(image)


def _shares_png(codes: np.ndarray, alpha: np.ndarray) -> bytes:
    lut = np.array([(0, 0, 0), *PALETTE], dtype=np.uint8)
    pixels = np.empty((*codes.shape, 4), dtype=np.uint8)
    pixels[..., :3] = lut[_palette_indexes(codes)]
    pixels[..., 3] = np.where(codes > 0, alpha, 0)
    return _encode(Image.fromarray(pixels, "RGBA"))


def _encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=COMPRESS_LEVEL)
    return out.getvalue()
