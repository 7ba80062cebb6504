"""Georeferenced rasters built at test time with rasterio from real imagery: a Web Mercator mosaic of a tile tree,
its copy reprojected to EPSG:4326, and label-maker's z17 tiles (tests/labelmaker.py) mosaicked where their
coordinates put them."""

from __future__ import annotations

from pathlib import Path

import mercantile
import numpy as np
from PIL import Image

from core.tiles import Tile

TILE = 256


def tile_images(root: Path, sources: list[Path], *, zoom: int, x0: int, y0: int, width: int) -> list[Tile]:
    """A z/x/y.png tree of 256 px tiles (each real image enlarged 4x, lossless), ``width`` tiles a row."""
    tiles = []
    for i, source in enumerate(sources):
        tile = Tile(zoom, x0 + i % width, y0 + i // width, f"{zoom}/{x0 + i % width}/{y0 + i // width}.png")
        target = root / str(tile.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(source) as image:
            image.convert("RGB").resize((TILE, TILE), Image.Resampling.NEAREST).save(target)
        tiles.append(tile)
    return tiles


def mosaic(path: Path, pictures: dict[Tile, Path]) -> Path:
    """An EPSG:3857 GeoTIFF holding each picture at its tile's place (cells without one are nodata 0)."""
    import rasterio
    from rasterio.transform import from_bounds

    xs, ys, zoom = [t.x for t in pictures], [t.y for t in pictures], next(iter(pictures)).z
    columns, rows = max(xs) - min(xs) + 1, max(ys) - min(ys) + 1  # type: ignore[operator]
    pixels = np.zeros((3, rows * TILE, columns * TILE), dtype=np.uint8)
    for tile, picture in pictures.items():
        with Image.open(picture) as image:
            block = np.asarray(image.convert("RGB").resize((TILE, TILE)), dtype=np.uint8).transpose(2, 0, 1)
        top, left = (tile.y - min(ys)) * TILE, (tile.x - min(xs)) * TILE  # type: ignore[operator]
        pixels[:, top : top + TILE, left : left + TILE] = block
    west, _, _, north = mercantile.xy_bounds(min(xs), min(ys), zoom)
    _, south, east, _ = mercantile.xy_bounds(max(xs), max(ys), zoom)
    transform = from_bounds(west, south, east, north, columns * TILE, rows * TILE)
    with rasterio.open(path, "w", driver="GTiff", width=columns * TILE, height=rows * TILE, count=3, dtype="uint8",
                       crs="EPSG:3857", transform=transform, nodata=0, tiled=True, blockxsize=256,
                       blockysize=256) as out:
        out.write(pixels)
    return path


def reprojected(path: Path, source: Path, crs: str = "EPSG:4326") -> Path:
    """``source`` warped to ``crs`` (bilinear), nodata 0 outside the original footprint."""
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    with rasterio.open(source) as src:
        transform, width, height = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds)
        profile = src.profile | {"crs": crs, "transform": transform, "width": width, "height": height}
        with rasterio.open(path, "w", **profile) as out:
            for band in range(1, src.count + 1):
                reproject(rasterio.band(src, band), rasterio.band(out, band), resampling=Resampling.bilinear,
                          src_nodata=0, dst_nodata=0)
    return path
