"""Safe image decoding: any file a tile root may hold becomes 8-bit RGB pixels, or an ``ImageError`` with its reason.

Two entry points:
- ``decode_tile`` (``decoding_tile``: the same, holding the large-image gate) gives a ``DecodedTile``: uint8 RGB
  pixels and which of them hold data. ``model.inputs.model_input`` alone turns it into the model's input (training,
  ``predict``, ``eval``, the worker, every tile source):

  ======================  ==================================================================================
  mode                    pixels (``DecodedTile.pixels``) and validity (``DecodedTile.valid``)
  ======================  ==================================================================================
  RGB                     unchanged; every pixel valid
  RGBA, LA, La, RGBa,     their colour, **not** composited: valid where alpha > 0 (transparent = "no data", a
  P, PA, colour keys      raster's nodata or mask included); an opaque alpha gives exactly its RGB tile
  L, 1, CMYK, YCbCr, ...  Pillow's own conversion
  I;16 (all byte orders)  16-bit range 0..65535 scaled to 0..255 (``v >> 8``), not clipped
  I                       if every value fits 0..65535 it is 16-bit data (Pillow opens 16-bit PNG/TIFF as I)
                          and scaled the same way; otherwise stretched linearly from its min..max
  F                       values within 0..1 are multiplied by 255; anything else is stretched min..max
  ======================  ==================================================================================

  Entirely transparent: ``EmptyImage`` (nothing to classify; a flat opaque colour is not empty, water is a class).
  8-bit RGB JPEG and PNG take libjpeg-turbo / libpng directly (2-3x faster than Pillow, the same pixels); anything
  else, or anything that path is unsure of, Pillow. Multi-frame files (GIF, APNG, TIFF) give their first frame.

- ``open_image``: a Pillow RGB image for what is not the model's input (a size, a picture to show), transparent
  areas composited on black (``to_rgb``).

Both refuse an image whose header declares more than ``max_pixels`` pixels before any pixel is decoded (a
decompression bomb), and truncated files raise instead of being padded with grey.

Memory. A small file can declare a large image (a 124 KB 16-bit PNG of 8000 x 8000). The default cap is what
tiles need (4096 x 4096), high-depth images become 8 bits a block of rows at a time, each image's pixels are copied
once into the (H, W, 3) layout the resize reads, and only one image above ``LARGE_IMAGE_PIXELS`` is decoded at a time
in a process: ``decoding_tile`` holds that gate until its caller has made the (small) model input. No reduction
precedes the one resize: it would make the input depend on the file's format (4000 x 4000 at 16 bits: 84 MiB).

Only the formats of ``core.choices.IMAGE_FORMATS`` (PNG, JPEG, WebP, TIFF, GIF) are ever opened, whatever the
file's name: anything else Pillow could read (EPS, which hands the file to Ghostscript, PSD, ICO, …), and PDF or SVG,
fails with "format X is not allowed". JPEGs are decoded by libjpeg-turbo through simplejpeg in strict mode: the
"Corrupt JPEG data" warnings that libjpeg (and so Pillow and torchvision) would decode through, giving a tile with
smeared garbage, make it fail as corrupt.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError

from core.choices import IMAGE_FORMATS
from model.errors import EmptyImage, ImageError
from model.image_headers import JPEG_SOI, fast_path_size, format_of, strict_jpeg
from model.torchvision_io import decoders

DEFAULT_MAX_PIXELS = 4096 * 4096  # tiles are 256-1024 px; TILECLASS_WORKER_MAX_PIXELS raises it for big chips
LARGE_IMAGE_PIXELS = 2048 * 2048  # above this, one decode at a time per process (``_large_image_gate``)
_ROWS_PER_BLOCK = 256
_large_images = threading.Lock()
_ALPHA_MODES = {"RGBA", "LA", "La", "RGBa", "PA"}
_KEYED_MODES = {"P", "L", "RGB"}
_PIL_LIMIT = re.compile(r"\((\d+) pixels\)")
_ALLOWED = ", ".join(IMAGE_FORMATS)


def open_image(source: Path | bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``source`` (a file path or the file's bytes) fully into an 8-bit RGB image.

    Raises:
        ImageError: the file is missing, empty, not an image, truncated, corrupt, or too large.
    """
    label = str(source) if isinstance(source, Path) else None
    data = read_image_bytes(source)
    try:
        image = _open(data, max_pixels)
        with _large_image_gate(image.size):
            _load(data, image)
            return to_rgb(image)
    except ImageError as exc:
        raise ImageError(exc.reason, source=label) from None


@dataclass(frozen=True)
class DecodedTile:
    """A decoded tile: its uint8 RGB ``pixels`` (3, H, W) and ``valid``, a bool (H, W) mask of the pixels that
    hold data (alpha above 0), or None when every pixel does."""

    pixels: torch.Tensor
    valid: torch.Tensor | None = None

    @property
    def coverage(self) -> float:
        """The share of the tile's pixels that hold data, 0..1."""
        if self.valid is None:
            return 1.0
        return int(self.valid.count_nonzero()) / self.valid.numel()


def decode_tile(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedTile:
    """Decode a tile's bytes into RGB pixels and their validity (see the module docstring).

    Raises:
        ImageError: as ``open_image``.
        EmptyImage: every pixel is transparent.
    """
    with decoding_tile(data, max_pixels=max_pixels) as tile:
        return tile


@contextmanager
def decoding_tile(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[DecodedTile]:
    """``decode_tile`` as a block that holds the large-image gate (for a large image) until it ends: make the model
    input inside it, and a full-size large tile is never held by more than one thread of the process."""
    if not data:
        raise ImageError("zero-byte file")
    size = fast_path_size(data)
    if size is not None:
        if size[0] * size[1] > max_pixels:
            raise ImageError(f"decompression bomb: {size[0] * size[1]} pixels > {max_pixels}")
        with _large_image_gate(size):
            tensor = _fast_decode(data, size)
            if tensor is not None:
                yield DecodedTile(tensor)
                return
    image = _open(data, max_pixels)
    with _large_image_gate(image.size):
        _load(data, image)
        tile = image_tile(image)
        del image
        if tile.valid is not None and not tile.valid.any():
            raise EmptyImage("entirely transparent")
        yield tile


def image_tile(image: Image.Image) -> DecodedTile:
    """A decoded Pillow image of any mode as a ``DecodedTile``: its colour, valid where its alpha is above 0."""
    if _is_high_depth(image) and not _has_alpha(image):  # one (H, W, 3) array of its 8-bit values, not three
        return DecodedTile(torch.from_numpy(np.repeat(_high_depth_gray(image)[:, :, None], 3, axis=2)).permute(2, 0, 1))
    if not _has_alpha(image):
        return DecodedTile(pil_to_tensor(to_rgb(image)))
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
    valid = torch.from_numpy(rgba[:, :, 3] > 0)
    pixels = torch.from_numpy(np.ascontiguousarray(rgba[:, :, :3])).permute(2, 0, 1)  # channels last, as above
    return DecodedTile(pixels, None if bool(valid.all()) else valid)


def _fast_decode(data: bytes, size: tuple[int, int]) -> torch.Tensor | None:
    """An 8-bit RGB JPEG or PNG through libjpeg-turbo / libpng directly; None: let Pillow decide and word it."""
    if data[:3] == JPEG_SOI:
        decoded = strict_jpeg(data)
        if decoded is not None and decoded.shape == (size[1], size[0], 3):
            return torch.from_numpy(decoded).permute(2, 0, 1).contiguous()
        return None
    io = decoders()
    try:
        tensor = io.decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=io.ImageReadMode.RGB)
    except RuntimeError:
        return None
    return tensor if tensor.shape == (3, size[1], size[0]) else None


@contextmanager
def _large_image_gate(size: tuple[int, int]) -> Iterator[None]:
    """Hold the large-image gate while an image of ``size`` is decoded, if it is large: decode threads then never
    hold more than one large image's buffers at once, whatever the tiles of a batch are."""
    if size[0] * size[1] <= LARGE_IMAGE_PIXELS:
        yield
        return
    with _large_images:
        yield


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a uint8 (3, H, W) tensor."""
    # One copy of the pixels, viewed as (3, H, W) over their (H, W, 3) memory: the channels-last layout the uint8
    # resize works in, so a large image is not copied twice more on its way to the model's input.
    array = np.array(image.convert("RGB") if image.mode != "RGB" else image, dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1)


def _has_alpha(image: Image.Image) -> bool:
    """Whether ``image`` says which pixels are transparent: an alpha channel, or a colour key (PNG, GIF)."""
    return image.mode in _ALPHA_MODES or (image.mode in _KEYED_MODES and "transparency" in image.info)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a decoded image of any Pillow mode to 8-bit RGB (see the module docstring for the rules), for display:
    transparent areas are composited on black (``image_tile`` keeps them apart for the model instead)."""
    mode = image.mode
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    if _is_high_depth(image):
        return Image.fromarray(_high_depth_gray(image), mode="L").convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError:
        raise ImageError(f"unsupported image mode {mode}") from None


def _is_high_depth(image: Image.Image) -> bool:
    return image.mode.startswith("I;16") or image.mode in ("I", "F")


def _high_depth_gray(image: Image.Image) -> np.ndarray:
    # Scaled a block of rows at a time: a float64 copy of a whole 8000 x 8000 image alone would be 512 MB.
    values = np.asarray(image)
    if values.size == 0:
        raise ImageError("empty image")
    low, high = float(values.min()), float(values.max())
    gray = np.empty(values.shape, dtype=np.uint8)
    for start in range(0, values.shape[0], _ROWS_PER_BLOCK):
        block = values[start : start + _ROWS_PER_BLOCK].astype(np.float64)
        if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and high <= 65535):
            block /= 257.0  # 65535 -> 255 exactly, 0 -> 0
        elif image.mode == "F" and low >= 0 and high <= 1:
            block *= 255.0
        elif high > low:
            block = (block - low) * (255.0 / (high - low))
        else:
            block[:] = 0
        gray[start : start + _ROWS_PER_BLOCK] = np.clip(np.rint(block), 0, 255)
    return gray


def read_image_bytes(source: Path | bytes) -> bytes:
    """A file's bytes (or ``source`` itself, when bytes), or ``ImageError`` naming the file: missing, empty, ..."""
    label = str(source) if isinstance(source, Path) else None
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        try:
            data = source.read_bytes()
        except FileNotFoundError:
            raise ImageError("no such file", source=label) from None
        except IsADirectoryError:
            raise ImageError("is a directory", source=label) from None
        except OSError as exc:
            raise ImageError(f"unreadable file ({exc.strerror or exc.__class__.__name__})", source=label) from None
    if not data:
        raise ImageError("zero-byte file", source=label)
    return data


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """The image's header read by an allowed decoder, checked against ``max_pixels``; no pixel decoded yet."""
    # Truncated files must fail loudly: a grey-padded tile would be classified as if it were real.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ImageError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; refusing to decode possibly truncated images")
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except UnidentifiedImageError:
        found = format_of(data)
        if found is not None:
            raise ImageError(f"format {found} is not allowed (allowed: {_ALLOWED})") from None
        raise ImageError("not an image") from None
    except Image.DecompressionBombError as exc:
        match = _PIL_LIMIT.search(str(exc))
        pixels = match.group(1) if match else "too many"
        raise ImageError(f"decompression bomb: {pixels} pixels > {max_pixels}") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
            raise ImageError("truncated image") from None
        raise ImageError(f"corrupt image header ({_short(exc)})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(f"decompression bomb: {width * height} pixels > {max_pixels}")
    if width == 0 or height == 0:
        raise ImageError("empty image")
    return image


def _load(data: bytes, image: Image.Image) -> None:
    """Decode the pixels of ``image`` (opened from ``data`` by ``_open``), or ``ImageError``."""
    if image.format == "JPEG":
        strict_jpeg(data)  # Pillow decodes through libjpeg's corrupt-data warnings: check first
    try:
        image.seek(0)
        image.load()
    except EOFError:
        raise ImageError("truncated image") from None
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error, MemoryError) as exc:
        if "truncated" in str(exc).lower() or "end of file" in str(exc).lower():
            raise ImageError("truncated image") from None
        raise ImageError(f"corrupt image ({_short(exc)})") from None


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text[:120]
