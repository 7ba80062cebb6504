"""The demo's inputs: a labelled training folder and a z/x/y tile tree of a region with a known land cover.

Both come from ``producer.demo.synthetic`` (procedural imagery) or, with ``--data``, from the user's own
ImageFolder: then the region's cells are filled with held-out images of each class.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mercantile
import numpy as np
from PIL import Image

from core.choices import IMAGE_EXTENSIONS
from core.tiles import Tile
from producer.demo.synthetic import CLASSES, land_cover_map, paint, write_training_set


@dataclass(frozen=True)
class DemoRegion:
    """The demo region: its bbox, zoom and the class each tile was made from."""

    zoom: int
    west: float
    south: float
    east: float
    north: float
    truth: dict[str, str]  # "z/x/y" -> class

    @property
    def bbox(self) -> str:
        return f"{self.west:.5f},{self.south:.5f},{self.east:.5f},{self.north:.5f}"

    @property
    def centre(self) -> tuple[float, float]:
        return (self.west + self.east) / 2, (self.south + self.north) / 2


def prepare_training_data(out: Path, *, user_data: Path | None, per_class: int, seed: int) -> Path:
    """The folder to train on: the user's, or a synthetic one made once (kept between runs with the same
    ``per_class`` and ``seed``; made again for others)."""
    if user_data is not None:
        return user_data
    marker, made_for = out / ".complete", f"per_class={per_class} seed={seed}\n"
    if not marker.exists() or marker.read_text() != made_for:
        shutil.rmtree(out, ignore_errors=True)
        write_training_set(out, per_class=per_class, size=64, seed=seed)
        marker.write_text(made_for)
    return out


def _user_sampler(data: Path, seed: int) -> tuple[list[str], Callable[[str, np.random.Generator], Image.Image]]:
    files = {d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
             for d in sorted(data.iterdir()) if d.is_dir()}
    classes = [name for name, paths in files.items() if paths]
    shuffler = random.Random(seed)

    def sample(label: str, _rng: np.random.Generator) -> Image.Image:
        with Image.open(shuffler.choice(files[label])) as image:
            return image.convert("RGB").resize((256, 256))

    return classes, sample


def build_region(root: Path, *, lon: float, lat: float, zoom: int, size: int, seed: int,
                 user_data: Path | None) -> DemoRegion:
    """Write ``root/{z}/{x}/{y}.png`` for a ``size`` x ``size`` block of tiles centred on (lon, lat)."""
    _, x, y = Tile.at_point(lon, lat, zoom).xyz()
    x0, y0 = x - size // 2, y - size // 2
    if user_data is None:
        classes: list[str] = list(CLASSES)
        sample: Callable[[str, np.random.Generator], Image.Image] = lambda label, rng: paint(label, rng, 256)  # noqa: E731
    else:
        classes, sample = _user_sampler(user_data, seed)
    cover = land_cover_map(size, size, seed=seed)
    rename = {name: classes[i % len(classes)] for i, name in enumerate(CLASSES)}
    rng = np.random.default_rng(seed + 1)
    truth: dict[str, str] = {}
    for row in range(size):
        for col in range(size):
            tile = Tile.checked(zoom, x0 + col, y0 + row)
            label = rename[cover[row][col]]
            path = root / str(zoom) / str(x0 + col) / f"{y0 + row}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            sample(label, rng).save(path)
            truth[str(tile)] = label
    west, _, _, north = mercantile.bounds(x0, y0, zoom)
    _, south, east, _ = mercantile.bounds(x0 + size - 1, y0 + size - 1, zoom)
    # Pull the bbox a hair inside the outer tiles so it does not touch the neighbours around the block.
    inset_x, inset_y = (east - west) / size * 0.01, (north - south) / size * 0.01
    region = DemoRegion(zoom, west + inset_x, south + inset_y, east - inset_x, north - inset_y, truth)
    (root.parent / "truth.json").write_text(json.dumps(truth, indent=0))
    return region
