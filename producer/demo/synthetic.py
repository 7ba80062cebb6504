"""Procedural aerial-looking imagery for the demo: five land-cover classes drawn with numpy and Pillow.

Each class has its own structure, not just its own colour, so a classifier has to learn texture and shape:
water (smooth waves, glints), trees (packed round canopies with shadows), field (parallel crop rows at any
angle), road (an asphalt band with lane marks across grass or soil), residential (roof rectangles along
streets). Colours, scales and angles vary per tile and noise is added, so the classes overlap a little.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("field", "residential", "road", "trees", "water")
Rng = np.random.Generator


def _jitter(rng: Rng, rgb: tuple[int, int, int], spread: int = 18) -> tuple[int, int, int]:
    r, g, b = (int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255)) for c in rgb)
    return (r, g, b)


def _smooth_noise(rng: Rng, size: int, scale: int) -> np.ndarray:
    coarse = rng.random((max(size // scale, 2), max(size // scale, 2))).astype(np.float32)
    image = Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32) / 255.0


def _water(rng: Rng, size: int) -> Image.Image:
    base = np.array(_jitter(rng, (40, 80, 120), 20), dtype=np.float32)
    waves = _smooth_noise(rng, size, int(rng.integers(6, 16)))
    pixels = base[None, None, :] * (0.8 + 0.4 * waves[..., None])
    glints = rng.random((size, size)) > 0.997
    pixels[glints] = 200
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _trees(rng: Rng, size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), _jitter(rng, (35, 55, 25)))
    draw = ImageDraw.Draw(image)
    radius = int(rng.integers(max(size // 28, 2), max(size // 12, 4)))
    for _ in range(int(size * size / (radius * radius) * 0.9)):
        x, y = rng.integers(-radius, size + radius, 2)
        shade = _jitter(rng, (50, 95, 40), 25)
        draw.ellipse((x - radius + 2, y - radius + 2, x + radius + 2, y + radius + 2), fill=(20, 30, 15))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=shade)
    return image.filter(ImageFilter.GaussianBlur(0.6))


def _field(rng: Rng, size: int) -> Image.Image:
    crop = _jitter(rng, [(170, 150, 80), (110, 140, 60), (140, 110, 70)][int(rng.integers(0, 3))], 20)
    big = size * 2
    image = Image.new("RGB", (big, big), crop)
    draw = ImageDraw.Draw(image)
    spacing = int(rng.integers(max(size // 20, 3), max(size // 8, 5)))
    row = tuple(int(c * 0.75) for c in crop)
    for offset in range(0, big, spacing):
        draw.line((offset, 0, offset, big), fill=row, width=max(spacing // 3, 1))
    image = image.rotate(float(rng.uniform(0, 180)), resample=Image.Resampling.BILINEAR)
    start = size // 2
    return image.crop((start, start, start + size, start + size))


def _road(rng: Rng, size: int) -> Image.Image:
    ground = _jitter(rng, [(95, 125, 60), (150, 130, 95)][int(rng.integers(0, 2))], 20)
    big = size * 2
    image = Image.new("RGB", (big, big), ground)
    draw = ImageDraw.Draw(image)
    width = int(rng.integers(max(size // 8, 3), max(size // 4, 5)))
    centre = big // 2 + int(rng.integers(-size // 5, size // 5 + 1))
    draw.rectangle((0, centre - width // 2, big, centre + width // 2), fill=_jitter(rng, (85, 85, 90), 12))
    dash = max(size // 16, 2)
    for x in range(0, big, dash * 3):
        draw.line((x, centre, x + dash, centre), fill=(225, 225, 210), width=max(width // 10, 1))
    image = image.rotate(float(rng.uniform(0, 180)), resample=Image.Resampling.BILINEAR)
    start = size // 2
    return image.crop((start, start, start + size, start + size))


def _residential(rng: Rng, size: int) -> Image.Image:
    image = Image.new("RGB", (size, size), _jitter(rng, (150, 150, 140), 15))
    draw = ImageDraw.Draw(image)
    block = int(rng.integers(max(size // 6, 6), max(size // 3, 8)))
    roofs = [(165, 70, 55), (120, 115, 115), (190, 175, 160)]
    for top in range(0, size, block):
        for left in range(0, size, block):
            if rng.random() < 0.15:
                draw.rectangle((left + 2, top + 2, left + block - 3, top + block - 3), fill=_jitter(rng, (80, 120, 60)))
                continue
            w, h = int(block * rng.uniform(0.45, 0.8)), int(block * rng.uniform(0.45, 0.8))
            x0, y0 = left + int(rng.integers(1, block - w)), top + int(rng.integers(1, block - h))
            draw.rectangle((x0 + 2, y0 + 2, x0 + w + 2, y0 + h + 2), fill=(60, 60, 60))
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=_jitter(rng, roofs[int(rng.integers(0, 3))], 20))
    return image


_PAINTERS: dict[str, Callable[[Rng, int], Image.Image]] = {
    "field": _field, "residential": _residential, "road": _road, "trees": _trees, "water": _water,
}


def paint(label: str, rng: Rng, size: int = 256) -> Image.Image:
    """One synthetic tile of class ``label``, with sensor-like noise and a small brightness shift."""
    image = _PAINTERS[label](rng, size)
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels * rng.uniform(0.85, 1.15) + rng.normal(0, 6, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_training_set(out: Path, *, per_class: int, size: int, seed: int, tile_size: int = 256) -> None:
    """An ImageFolder tree ``out/<class>/<i>.png`` of ``size``-pixel patches.

    Each patch is painted at the tile size and scaled down (antialiased, as the classifier scales tiles), so
    training sees textures at the same scale as the region's tiles.
    """
    rng = np.random.default_rng(seed)
    for label in CLASSES:
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            patch = paint(label, rng, tile_size).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
            patch.save(folder / f"{index:05d}.png")


def land_cover_map(width: int, height: int, *, seed: int) -> list[list[str]]:
    """A plausible region: a river, a town with roads, forest and fields, as a class per cell."""
    rng = np.random.default_rng(seed)
    cover = [["field"] * width for _ in range(height)]
    forest = _smooth_noise(rng, max(width, height) * 4, 8)[: height * 4 : 4, : width * 4 : 4]
    for y in range(height):
        for x in range(width):
            if forest[y, x] > 0.6:
                cover[y][x] = "trees"
    town_x, town_y, radius = width * 0.65, height * 0.4, min(width, height) * 0.22
    for y in range(height):
        for x in range(width):
            if (x - town_x) ** 2 + (y - town_y) ** 2 < radius**2:
                cover[y][x] = "residential"
    road_y = int(height * 0.4)
    for x in range(width):
        cover[road_y][x] = "road"
    road_x = int(width * 0.65)
    for y in range(height):
        cover[y][road_x] = "road"
    for y in range(height):
        river_x = int(width * 0.25 + np.sin(y / max(height, 1) * 3.0) * width * 0.08)
        for x in (river_x, river_x + 1):
            if 0 <= x < width and cover[y][x] != "road":
                cover[y][x] = "water"
    return cover
