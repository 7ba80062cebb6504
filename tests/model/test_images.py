"""Decoding: every Pillow mode to correct RGB, and every kind of bad file to an ImageError with a short reason."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.errors import ImageError
from model.images import decode_tile, open_image, to_rgb
from tests.conftest import EUROSAT, REPO_ROOT
from tests.factories import corrupted_in_the_middle

JPEG = EUROSAT / "Forest" / "Forest_1.jpg"


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


def both(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The same bytes through open_image and decode_tile (HWC arrays)."""
    return pixels(open_image(data)), decode_tile(data).pixels.permute(1, 2, 0).numpy()


def test_rgb_jpeg_fast_path_matches_pillow_exactly() -> None:
    data = JPEG.read_bytes()
    via_pil, via_tile = both(data)
    assert via_pil.shape == (64, 64, 3)
    assert np.array_equal(via_pil, via_tile)
    assert open_image(JPEG).size == (64, 64)


def test_rgb_png_fast_path_matches_pillow_exactly() -> None:
    array = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    via_pil, via_tile = both(encode(Image.fromarray(array)))
    assert np.array_equal(via_pil, array) and np.array_equal(via_tile, array)


def test_rgba_keeps_its_colour_and_says_which_pixels_hold_data() -> None:
    array = np.array([[[255, 255, 255, 128], [255, 0, 0, 0]], [[0, 255, 0, 255], [10, 20, 30, 255]]], np.uint8)
    data = encode(Image.fromarray(array, "RGBA"))
    tile = decode_tile(data)
    assert np.array_equal(tile.pixels.permute(1, 2, 0).numpy(), array[:, :, :3])  # not composited on anything
    assert tile.valid is not None and tile.valid.tolist() == [[True, False], [True, True]]  # alpha > 0
    assert tile.coverage == 0.75
    # For display (not the model), open_image still composites on black.
    assert pixels(open_image(data)).tolist() == [[[128, 128, 128], [0, 0, 0]], [[0, 255, 0], [10, 20, 30]]]
    opaque = array.copy()
    opaque[:, :, 3] = 255
    rgb = decode_tile(encode(Image.fromarray(array[:, :, :3])))
    assert decode_tile(encode(Image.fromarray(opaque, "RGBA"))).valid is None and rgb.valid is None
    assert torch.equal(decode_tile(encode(Image.fromarray(opaque, "RGBA"))).pixels, rgb.pixels)


def test_la_is_composited_on_black() -> None:
    image = Image.fromarray(np.array([[[200, 255], [200, 0]]], np.uint8), "LA")
    assert pixels(open_image(encode(image)))[0].tolist() == [[200, 200, 200], [0, 0, 0]]


def test_palette_keeps_colours_and_treats_transparent_index_as_nodata() -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    image.putdata([1, 2])
    assert pixels(open_image(encode(image))).tolist() == [[[255, 0, 0], [0, 0, 255]]]
    transparent = encode(image, transparency=1)
    assert pixels(open_image(transparent)).tolist() == [[[0, 0, 0], [0, 0, 255]]]
    tile = decode_tile(transparent)
    assert tile.pixels.permute(1, 2, 0).tolist() == [[[255, 0, 0], [0, 0, 255]]]
    assert tile.valid is not None and tile.valid.tolist() == [[False, True]] and tile.coverage == 0.5


def test_pa_goes_through_rgba() -> None:
    image = Image.new("PA", (2, 1))
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    image.putdata([(1, 255), (1, 0)])
    assert pixels(to_rgb(image)).tolist() == [[[0, 255, 0], [0, 0, 0]]]


def test_grey_and_bilevel() -> None:
    grey = Image.fromarray(np.array([[0, 100, 255]], np.uint8), "L")
    assert pixels(open_image(encode(grey))).tolist() == [[[0] * 3, [100] * 3, [255] * 3]]
    assert np.array_equal(decode_tile(encode(grey)).pixels.permute(1, 2, 0).numpy(), pixels(open_image(encode(grey))))
    bilevel = grey.convert("1")
    assert pixels(open_image(encode(bilevel))).tolist() == [[[0] * 3, [0] * 3, [255] * 3]]


def test_cmyk() -> None:
    image = Image.new("CMYK", (2, 1))
    image.putdata([(255, 0, 0, 0), (0, 0, 0, 0)])
    assert pixels(open_image(encode(image, "TIFF"))).tolist() == [[[0, 255, 255], [255, 255, 255]]]
    decoded = decode_tile(encode(image, "JPEG", quality=95)).pixels
    assert decoded.shape == (3, 1, 2) and decoded.dtype == torch.uint8


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    values = np.array([[0, 65535, 32896, 1000]], np.uint16)
    expected = [0, 255, 128, 4]  # 32896 = 128 * 257; clipping would give 255 for everything above 255
    data = encode(Image.fromarray(values))
    assert [p[0] for p in pixels(open_image(data))[0]] == expected
    assert decode_tile(data).pixels[0, 0].tolist() == expected


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L"])
def test_sixteen_bit_byte_orders(mode: str) -> None:
    fmt = ">u2" if mode == "I;16B" else "<u2"
    raw = np.array([[0, 65535, 32896]], dtype=fmt).tobytes()
    image = Image.frombytes(mode, (3, 1), raw)
    assert [p[0] for p in pixels(to_rgb(image))[0]] == [0, 255, 128]


def test_thirty_two_bit_integer_and_float() -> None:
    sixteen_in_i = Image.fromarray(np.array([[0, 65535, 32896]], np.int32), "I")
    assert [p[0] for p in pixels(to_rgb(sixteen_in_i))[0]] == [0, 255, 128]
    wide = Image.fromarray(np.array([[-1000, 0, 1000]], np.int32), "I")
    assert [p[0] for p in pixels(to_rgb(wide))[0]] == [0, 128, 255]
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F")
    assert [p[0] for p in pixels(to_rgb(unit))[0]] == [0, 128, 255]
    other = Image.fromarray(np.array([[10.0, 20.0, 30.0]], np.float32), "F")
    assert [p[0] for p in pixels(to_rgb(other))[0]] == [0, 128, 255]


def test_multi_frame_gives_first_frame() -> None:
    frames = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    assert pixels(open_image(buffer.getvalue()))[0, 0].tolist() == [255, 0, 0]


def bad_reason(data: bytes | Path, **options: int) -> tuple[str, str | None]:
    with pytest.raises(ImageError) as pil_error:
        open_image(data, **options)
    tile_reason = None
    if isinstance(data, bytes) and data:
        with pytest.raises(ImageError) as tile_error:
            decode_tile(data, **options)
        tile_reason = tile_error.value.reason
    return pil_error.value.reason, tile_reason


def test_zero_byte_missing_and_directory(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="zero-byte file") as error:
        open_image(empty)
    assert str(error.value) == f"{empty}: zero-byte file"
    with pytest.raises(ImageError, match="zero-byte file"):
        decode_tile(b"")
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is a directory"):
        open_image(tmp_path)


def test_random_bytes_and_html_are_not_images(tmp_path: Path) -> None:
    html = tmp_path / "tile.png"
    html.write_bytes(b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>")
    assert bad_reason(html) == ("not an image", None)
    assert bad_reason(html.read_bytes()) == ("not an image", "not an image")
    noise = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert bad_reason(noise) == ("not an image", "not an image")


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95])
def test_truncated_jpeg_raises_instead_of_grey(fraction: float) -> None:
    data = JPEG.read_bytes()
    assert bad_reason(data[: int(len(data) * fraction)]) == ("truncated image", "truncated image")


def test_truncated_png_raises() -> None:
    data = encode(Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    assert bad_reason(data[: len(data) // 2]) == ("truncated image", "truncated image")
    assert bad_reason(data[:60])[0] == "truncated image"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bomb_is_refused_before_decoding() -> None:
    # A 1x1 GIF whose logical screen claims 10000 x 10000: the size is known from the header alone.
    gif = bytearray(encode(Image.new("P", (1, 1)), "GIF"))
    gif[6:10] = struct.pack("<HH", 10_000, 10_000)
    assert bad_reason(bytes(gif))[0] == "decompression bomb: 100000000 pixels > 16777216"
    gif[6:10] = struct.pack("<HH", 20_000, 20_000)  # above Pillow's own hard limit, reported the same way
    assert bad_reason(bytes(gif))[0].startswith("decompression bomb: 400000000 pixels")
    assert bad_reason(JPEG.read_bytes(), max_pixels=1000) == ("decompression bomb: 4096 pixels > 1000",) * 2


def test_fast_path_checks_the_png_header_size_first() -> None:
    png = bytearray(encode(Image.new("RGB", (8, 8))))
    png[16:24] = struct.pack(">II", 9000, 9000)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))  # a valid IHDR that lies about the size
    with pytest.raises(ImageError, match=r"decompression bomb: 81000000 pixels > 16777216"):
        decode_tile(bytes(png))


def eps() -> bytes:
    return (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
            b"(/etc/passwd) (r) file pop 0 0 moveto 8 8 lineto stroke showpage\n%%EOF\n")


def psd() -> bytes:  # the header of an 8-bit RGB Photoshop file; Pillow reads PSD but writes none
    return b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 8, 8, 8, 3) + b"\0" * 64


def icon() -> bytes:
    return encode(Image.new("RGB", (16, 16), (10, 200, 30)), "ICO")


def pdf() -> bytes:
    return encode(Image.new("RGB", (16, 16), (10, 200, 30)), "PDF")


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect/></svg>'


@pytest.mark.parametrize(("make", "name"), [(eps, "EPS"), (psd, "PSD"), (icon, "ICO"), (pdf, "PDF"),
                                            (lambda: SVG, "SVG")])
def test_formats_outside_the_allow_list_are_refused_by_name(make: object, name: str) -> None:
    data = make()  # type: ignore[operator]
    reason = f"format {name} is not allowed (allowed: PNG, JPEG, WEBP, TIFF, GIF)"
    assert bad_reason(data) == (reason, reason)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "GIF"])
def test_every_allowed_format_decodes(fmt: str) -> None:
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (24, 24, 3), dtype=np.uint8))
    pil, tile = both(encode(image, fmt))
    assert pil.shape == tile.shape == (24, 24, 3)


def test_a_jpeg_corrupted_in_the_middle_fails_as_corrupt() -> None:
    # Not every change of entropy-coded bytes is detectable; in this tile libjpeg reports "bad Huffman code".
    original = EUROSAT / "Residential" / "Residential_1.jpg"
    data = corrupted_in_the_middle(original.read_bytes())
    Image.open(io.BytesIO(data)).load()  # Pillow alone decodes it without a word: the check is ours
    pil, tile = bad_reason(data)
    assert pil == tile and pil.startswith("corrupt image (Corrupt JPEG data")
    assert decode_tile(original.read_bytes()).pixels.shape == (3, 64, 64)
    grey = encode(Image.open(original).convert("L"), "JPEG")  # the Pillow path (one channel) is checked too
    assert bad_reason(corrupted_in_the_middle(grey))[0].startswith("corrupt image (Corrupt JPEG data")


def test_torchvision_decoders_warn_nothing_and_importing_installs_no_filter() -> None:
    """torchvision's per-call deprecation warning stays out of the logs once a decoder is used, and only then: the
    filter is installed by the first decode, not by importing model.images (tests/test_architecture.py checks
    every module)."""
    code = ("import warnings\nimport numpy as np, io, torch\nfrom PIL import Image\n"  # torch installs its own
            "before = list(warnings.filters)\nimport model.images\nassert warnings.filters == before\n"
            "buffer = io.BytesIO()\nImage.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, 'PNG')\n"
            "warnings.simplefilter('error', DeprecationWarning)\n"  # any other deprecation still raises
            "assert model.images.decode_tile(buffer.getvalue()).pixels.shape == (3, 8, 8)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                            env=os.environ | {"PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
