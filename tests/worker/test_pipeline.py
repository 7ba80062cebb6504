"""The decode-ahead pipeline on real JPEG tiles and a tiny real model."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from core.sources import TileUnreadable
from core.sources.files import read_tile_file
from core.sources.folder import FolderReader
from core.sources.layouts import Layout
from core.tiles import Tile
from model.errors import EmptyImage
from model.images import decode_tile, open_image
from model.predict import Classifier
from tests.worker.support import broken_tiles, tile_tree, tiny_checkpoint
from worker.pipeline import TileFile, classify_tiles


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    torch.set_num_threads(1)
    return Classifier.load(tiny_checkpoint(tmp_path_factory.mktemp("ckpt")), device="cpu", precision="fp32")


def sources(root: Path, rows: list) -> list[TileFile]:
    return [TileFile(Tile(z, x, y, path), root / path) for z, x, y, path in rows]


@pytest.mark.parametrize("chunk_size", [1, 4, 16])
def test_every_tile_is_classified_once_like_the_direct_predictor(
        tmp_path: Path, classifier: Classifier, chunk_size: int) -> None:
    rows = tile_tree(tmp_path, 13)
    with ThreadPoolExecutor(2) as pool:
        outcome = classify_tiles(classifier, sources(tmp_path, rows), chunk_size=chunk_size, pool=pool)
    assert outcome.failures == []
    assert [c.tile.path for c in outcome.classified] == [row[3] for row in rows]
    # The same images through the PIL path of the predictor, one batch: same probabilities.
    direct = classifier.predict_batch([open_image(tmp_path / row[3]) for row in rows])
    for got, want in zip(outcome.classified, direct, strict=True):
        assert got.label == want.label
        assert got.probabilities == pytest.approx(want.probabilities, abs=1e-4)


def test_broken_tiles_fail_alone_with_their_reason(tmp_path: Path, classifier: Classifier) -> None:
    good = tile_tree(tmp_path, 6)
    broken = broken_tiles(tmp_path)
    refused = TileFile(Tile(None, None, None, "../outside.jpg"), reader=FolderReader(tmp_path, Layout.parse("plain")))
    mixed = [*sources(tmp_path, [good[0], *broken, *good[1:]]), refused]
    with ThreadPoolExecutor(2) as pool:
        outcome = classify_tiles(classifier, mixed, chunk_size=4, pool=pool)
    assert sorted(c.tile.path for c in outcome.classified) == sorted(row[3] for row in good)
    reasons = {f.tile.path: f.reason for f in outcome.failures}
    assert reasons.pop("../outside.jpg").startswith("tile path '../outside.jpg'")
    assert set(reasons) == {row[3] for row in broken}
    for row, word in broken.items():
        assert word in reasons[row[3]], (row, reasons[row[3]])


def test_oversized_and_unreadable_files_are_refused_before_decoding(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * 2048)
    with pytest.raises(TileUnreadable, match="file too large: 2048 bytes > 1024"):
        read_tile_file(big, max_bytes=1024)
    with pytest.raises(TileUnreadable, match="is a directory"):
        read_tile_file(tmp_path)


def test_entirely_transparent_tiles_are_empty_flat_ones_classified_and_partial_ones_follow_the_coverage_bound(
        tmp_path: Path, classifier: Classifier) -> None:
    from PIL import Image

    def save(name: str, image: Image.Image, **options: object) -> TileFile:
        image.save(tmp_path / name, **options)
        return TileFile(Tile(None, None, None, name), tmp_path / name)

    partly = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    partly.paste((30, 90, 160, 255), (0, 0, 8, 8))
    palette = Image.new("P", (256, 256), 0)
    palette.putpalette([10, 20, 30] * 256)
    files = [
        save("clear.png", Image.new("RGBA", (256, 256), (120, 80, 40, 0))),
        save("clear-grey.png", Image.new("LA", (256, 256), (200, 0))),
        save("clear-palette.png", palette, transparency=0),
        save("water.png", Image.new("RGB", (256, 256), (20, 60, 140))),  # flat, opaque: open water is a class
        save("corner.png", partly),
    ]
    with ThreadPoolExecutor(2) as pool:
        outcome = classify_tiles(classifier, files, chunk_size=4, pool=pool)  # the default bound: 0.5
        everything = classify_tiles(classifier, files, chunk_size=4, pool=pool, min_coverage=0)
    transparent = [("clear-grey.png", "entirely transparent"), ("clear-palette.png", "entirely transparent"),
                   ("clear.png", "entirely transparent")]
    assert sorted((e.tile.path, e.reason) for e in outcome.empty) == [
        *transparent, ("corner.png", "partial: 0% data")]  # 64 of 65,536 pixels hold data
    assert [(c.tile.path, c.coverage) for c in outcome.classified] == [("water.png", 1.0)]
    assert sorted((e.tile.path, e.reason) for e in everything.empty) == transparent
    assert sorted((c.tile.path, c.coverage) for c in everything.classified) == [
        ("corner.png", 64 / 65536), ("water.png", 1.0)]
    assert outcome.failures == everything.failures == []
    with pytest.raises(EmptyImage, match="entirely transparent"):
        decode_tile((tmp_path / "clear.png").read_bytes())
    assert open_image(tmp_path / "clear.png").size == (256, 256)  # a picture of it can still be shown
