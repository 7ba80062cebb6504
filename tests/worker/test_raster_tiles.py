"""GeoTIFF sources built with rasterio from real imagery, cut by rio-tiler and classified by the worker's pipeline
with a model trained on EuroSAT: the cut tiles agree with the tile tree they were made from, in EPSG:3857 and
reprojected to EPSG:4326, and label-maker's tiles mosaicked are all classified."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from core.region import Region
from core.settings import load_settings
from core.sources import RasterSource
from core.sources.base import SourceError
from core.tiles import Tile
from model.predict import Classifier
from testkit.rasters import mosaic, reprojected, tile_images
from tests.conftest import EUROSAT, SUBSET_CLASSES
from tests.labelmaker import labelmaker_tiles
from worker.pipeline import TileFile, classify_tiles

SIDE = 8  # an 8 x 8 block of z17 tiles


@pytest.fixture(scope="module")
def classifier(trained_checkpoint: Path) -> Classifier:
    torch.set_num_threads(1)
    return Classifier.load(trained_checkpoint, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Tile]]:
    """64 real EuroSAT images (held out from training: numbers 500+) as a z17 tree of 256 px PNG tiles."""
    root = tmp_path_factory.mktemp("tree")
    images = [EUROSAT / SUBSET_CLASSES[i % 4] / f"{SUBSET_CLASSES[i % 4]}_{500 + i // 4}.jpg" for i in range(SIDE ** 2)]
    return root, tile_images(root, images, zoom=17, x0=70400, y0=42980, width=SIDE)


def labels(classifier: Classifier, files: list[TileFile]) -> dict[tuple[int, int, int], str]:
    with ThreadPoolExecutor(2) as pool:
        outcome = classify_tiles(classifier, files, chunk_size=16, pool=pool)
    assert outcome.failures == []
    return {c.tile.xyz(): c.label for c in outcome.classified}


def raster_labels(classifier: Classifier, path: Path) -> tuple[dict[tuple[int, int, int], str], int]:
    """The labels of every tile the raster's source lists (its own zoom), and how many were empty."""
    source = RasterSource.at(path, settings=load_settings())
    tiles = [tile for chunk in source.tiles(None) for tile in chunk.tiles]
    reader = source.reader(load_settings())
    with ThreadPoolExecutor(2) as pool:
        outcome = classify_tiles(classifier, [TileFile(t, reader=reader) for t in tiles], chunk_size=16,
                                 pool=pool)
    assert outcome.failures == []
    return {c.tile.xyz(): c.label for c in outcome.classified}, len(outcome.empty)


def agreement(got: dict, want: dict, keys: set) -> float:
    return sum(got.get(k) == want[k] for k in keys) / len(keys)


def test_a_web_mercator_mosaic_is_cut_back_into_its_own_tiles(tmp_path: Path, tree, classifier: Classifier) -> None:
    root, tiles = tree
    path = mosaic(tmp_path / "ortho.tif", {t: root / str(t.path) for t in tiles})
    source = RasterSource.at(path, settings=load_settings())
    assert source.open_file(path).default_zoom == 17  # 1.19 m pixels: z17's own resolution
    assert sorted(t.xyz() for c in source.tiles(None) for t in c.tiles) == sorted(t.xyz() for t in tiles)
    assert [t.xyz() for c in source.tiles(Region(zooms=[16])) for t in c.tiles] == sorted(
        {(16, t.x // 2, t.y // 2) for t in tiles})  # type: ignore[operator]
    reference = labels(classifier, [TileFile(t, root / str(t.path)) for t in tiles])
    cut, empty = raster_labels(classifier, path)
    assert empty == 0 and agreement(cut, reference, set(reference)) >= 0.95


def test_a_copy_reprojected_to_wgs84_agrees_on_its_interior_and_its_edges_hold_nodata(
        tmp_path: Path, tree, classifier: Classifier) -> None:
    root, tiles = tree
    path = reprojected(tmp_path / "ortho-4326.tif", mosaic(tmp_path / "ortho.tif",
                                                            {t: root / str(t.path) for t in tiles}))
    reference = labels(classifier, [TileFile(t, root / str(t.path)) for t in tiles])
    cut, _ = raster_labels(classifier, path)
    xs, ys = [t.x for t in tiles], [t.y for t in tiles]
    interior = {t.xyz() for t in tiles if min(xs) < t.x < max(xs) and min(ys) < t.y < max(ys)}  # type: ignore
    assert len(interior) == 36 and agreement(cut, reference, interior) >= 0.85


def test_the_labelmaker_tiles_mosaicked_are_all_classified_and_the_missing_cell_is_empty(
        tmp_path: Path, classifier: Classifier) -> None:
    pictures = {}
    for file in sorted(labelmaker_tiles(tmp_path / "z17-jpg").glob("*.jpg")):
        x, y, z = map(int, file.stem.split("-"))
        pictures[Tile(z, x, y)] = file
    assert len(pictures) == 8
    cut, empty = raster_labels(classifier, mosaic(tmp_path / "labelmaker.tif", pictures))
    assert set(cut) == {t.xyz() for t in pictures} and empty == 1  # the grid's one missing cell: all nodata


def test_files_that_are_not_georeferenced_rasters_fail_in_one_line(tmp_path: Path) -> None:
    import numpy as np
    import rasterio

    (tmp_path / "notes.tif").write_text("not a raster")
    with rasterio.open(tmp_path / "plain.tif", "w", driver="GTiff", width=16, height=16, count=3,
                       dtype="uint8") as out:
        out.write(np.zeros((3, 16, 16), dtype=np.uint8))
    with pytest.raises(SourceError, match=r"notes.tif' is not a readable GeoTIFF"):
        RasterSource.at(tmp_path / "notes.tif", settings=load_settings())
    with pytest.raises(SourceError, match=r"plain.tif' has no georeferencing \(no CRS\)"):
        RasterSource.at(tmp_path / "plain.tif", settings=load_settings())
