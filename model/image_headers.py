"""What a tile file is, judged from its bytes before Pillow decodes it (model/images.py uses these).

- ``fast_path_size``: the size of an 8-bit RGB JPEG or PNG that libjpeg-turbo / libpng decode exactly like Pillow;
- ``strict_jpeg``: a JPEG decoded by libjpeg-turbo (simplejpeg) with its "Corrupt JPEG data" warnings as errors;
- ``format_of``: the name of a format outside ``core.choices.IMAGE_FORMATS`` that a file looks like, from its first
  bytes only, so that the refusal can say "format EPS is not allowed" without running that format's decoder.
"""

from __future__ import annotations

import struct

import numpy as np
import simplejpeg
from PIL import Image

from core.choices import IMAGE_FORMATS
from model.errors import ImageError

JPEG_SOI = b"\xff\xd8\xff"
# Formats Pillow does not read, recognised only to say what they are: (name, file prefixes).
_UNREADABLE_FORMATS = (("PDF", (b"%PDF-",)), ("SVG", (b"<svg", b"<?xml")))


def strict_jpeg(data: bytes) -> np.ndarray | None:
    """The JPEG decoded to RGB by libjpeg-turbo with warnings as errors; None when simplejpeg cannot do this one
    (CMYK, say), so that Pillow decides. ``ImageError`` for corrupt or truncated data."""
    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    except ValueError as exc:
        text = str(exc)
        if "Premature end" in text:
            raise ImageError("truncated image") from None
        if "Corrupt JPEG data" in text or "Bogus" in text or "Invalid" in text or "Huffman" in text:
            raise ImageError(f"corrupt image ({text.splitlines()[0][:120]})") from None
        return None


def format_of(data: bytes) -> str | None:
    """The name of a format outside the allow-list that ``data`` looks like, judged from its first bytes only (no
    decoder of it is run)."""
    Image.init()
    prefix = data[:16]
    for name, (_, accept) in Image.OPEN.items():
        if name not in IMAGE_FORMATS and accept is not None:
            try:
                if accept(prefix):
                    return name
            except Exception:  # a plugin's check of a short prefix failed; the next plugin may know it
                continue
    head = data[:256].lstrip()
    return next((name for name, marks in _UNREADABLE_FORMATS if head.startswith(marks)), None)


def fast_path_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) when ``data`` is an 8-bit, 3-channel JPEG or PNG that torchvision decodes exactly like Pillow.

    Everything else (grey, palette, alpha, 16-bit, CMYK, a JPEG without its end marker) returns None and takes
    the Pillow path, which does the mode conversions and words the errors.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 33:
        width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
        if depth == 8 and colour == 2 and b"tRNS" not in data and data.rstrip(b"\0")[-8:-4] == b"IEND":
            return width, height
        return None
    if data[:3] == b"\xff\xd8\xff" and data.rstrip(b"\0")[-2:] == b"\xff\xd9":
        return _jpeg_rgb_size(data)
    return None


def _jpeg_rgb_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG markers to the frame header; (width, height) for a 3-component 8-bit frame, else None."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):  # baseline, extended, progressive Huffman frames
            if pos + 10 > len(data):
                return None
            precision, height, width, components = struct.unpack(">BHHB", data[pos + 4 : pos + 10])
            adobe_cmyk = b"Adobe" in data[:pos]
            if precision == 8 and components == 3 and not adobe_cmyk and width and height:
                return width, height
            return None
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        pos += 2 + length
    return None
