"""One preprocessing contract (issue 27): the same pixels are the same model input and the same answer whatever
their file format and source, in the worker's pipeline and in ``tileclass predict`` alike; tiles made by a tiler
(gdal2tiles' RGBA PNGs) agree with the tree they were made from; and a fringe tile of one column of imagery is
empty below the coverage bound, classified on the training data's mean pixel at bound 0.

The model takes 32 px inputs and the tiles are 256 px: at four times the model's size or more, the worker used to
box-reduce some formats (RGBA, palette, WebP, TIFF, COG cuts) and not others. Its weights are random (equal inputs
must give equal answers, whatever they are) and its fill pixel is its own, as training stores it.
"""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mercantile
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from core.results import Classified
from core.settings import load_settings
from core.sources import MBTilesSource, PMTilesSource, RasterSource, TileReader, UrlSource
from core.tiles import Tile
from model.arch import build_model
from model.checkpoint import CheckpointMeta, save_checkpoint
from model.images import DecodedTile, decode_tile
from model.inputs import ModelInput
from model.predict import Classifier
from model.transforms import IMAGENET_MEAN, IMAGENET_STD
from producer.cli import app
from testkit.archives import pmtiles_from_mbtiles, write_mbtiles
from tests.conftest import EUROSAT
from tests.tile_server import serving
from worker import device_decode
from worker.pipeline import TileFile, classify_tiles, load_from_source, load_tile

TILE = Tile(16, 31106, 25106)  # the tile whose label flipped in the issue
SIZE = 256
FILL = (97, 110, 84)  # the checkpoint's own mean pixel


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    meta = CheckpointMeta(arch="resnet18", class_names=("Forest", "Highway", "Residential", "SeaLake"), image_size=32,
                          mean=IMAGENET_MEAN, std=IMAGENET_STD, fill_pixel=FILL)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint(path, model=build_model("resnet18", 4), meta=meta)
    return path


@pytest.fixture(scope="module")
def classifier(checkpoint: Path) -> Classifier:
    torch.set_num_threads(1)
    loaded = Classifier.load(checkpoint, device="cpu")
    assert 4 * loaded.image_size <= SIZE and loaded.input_fill == FILL
    return loaded


def reference_pixels(name: str = "Residential_1001") -> np.ndarray:
    """A 256 px RGB tile of real imagery with at most 256 colours (so that a palette PNG holds exactly it)."""
    with Image.open(EUROSAT / name.split("_")[0] / f"{name}.jpg") as image:
        tile = image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    return np.asarray(tile.quantize(256).convert("RGB"))


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def lossless_files(pixels: np.ndarray) -> dict[str, bytes]:
    """The same pixels as RGB PNG, RGBA PNG with an opaque alpha, palette PNG, lossless WebP and TIFF."""
    colours, index = np.unique(pixels.reshape(-1, 3), axis=0, return_inverse=True)
    palette = Image.fromarray(index.reshape(SIZE, SIZE).astype(np.uint8), "L").convert("P")
    palette.putpalette(colours.astype(np.uint8).flatten().tolist())
    opaque = np.dstack([pixels, np.full((SIZE, SIZE), 255, np.uint8)])
    files = {"rgb.png": encode(Image.fromarray(pixels), "PNG"),
             "rgba.png": encode(Image.fromarray(opaque, "RGBA"), "PNG"),
             "palette.png": encode(palette, "PNG"),
             "lossless.webp": encode(Image.fromarray(pixels), "WEBP", lossless=True, exact=True),
             "tile.tif": encode(Image.fromarray(pixels), "TIFF", compression="tiff_lzw")}
    for name, data in files.items():  # the files themselves hold exactly these pixels (Pillow's own reading)
        with Image.open(io.BytesIO(data)) as image:
            assert np.array_equal(np.asarray(image.convert("RGB")), pixels), name
    assert Image.open(io.BytesIO(files["palette.png"])).mode == "P"
    return files


def cog(path: Path, tile: Tile, pixels: np.ndarray, *, nodata: int | None = None) -> Path:
    """A Cloud-Optimized GeoTIFF in EPSG:3857 holding ``pixels`` on ``tile``'s own grid at its resolution, so that
    no warp changes a pixel when rio-tiler cuts the tile back out."""
    import rasterio
    from rasterio.transform import from_bounds

    assert tile.x is not None and tile.y is not None and tile.z is not None
    west, south, east, north = mercantile.xy_bounds(tile.x, tile.y, tile.z)
    with rasterio.open(path, "w", driver="COG", width=SIZE, height=SIZE, count=3, dtype="uint8", crs="EPSG:3857",
                       transform=from_bounds(west, south, east, north, SIZE, SIZE), nodata=nodata) as out:
        out.write(pixels.transpose(2, 0, 1))
    return path


def archives(folder: Path, data: bytes, *, image_format: str) -> dict[str, TileReader]:
    """``data`` as the tile ``TILE`` of an MBTiles and of a PMTiles file, opened as a worker opens them."""
    settings = load_settings()
    mbtiles = write_mbtiles(folder / f"tiles-{image_format}.mbtiles", [(*TILE.xyz(), data)], image_format=image_format)
    pmtiles = pmtiles_from_mbtiles(folder / f"tiles-{image_format}.pmtiles", mbtiles)
    return {"mbtiles": MBTilesSource.at(mbtiles, settings=settings).reader(settings),
            "pmtiles": PMTilesSource.at(pmtiles, settings=settings).reader(settings)}


def worker_answer(classifier: Classifier, tile_file: TileFile) -> Classified:
    """The worker's pipeline on one tile (a chunk of one, as ``tileclass predict`` classifies one file)."""
    with ThreadPoolExecutor(1) as pool:
        outcome = classify_tiles(classifier, [tile_file], chunk_size=1, pool=pool)
    assert outcome.failures == [] and outcome.empty == [], (outcome.failures, outcome.empty)
    [classified] = outcome.classified
    return classified


def predict_answer(checkpoint: Path, file: Path, *options: str) -> dict:
    """``tileclass predict MODEL FILE --json`` with every class's probability."""
    result = CliRunner().invoke(app, ["predict", str(checkpoint), str(file), "--json", "--top-k", "4",
                                      "--device", "cpu", *options])
    assert result.exit_code == 0, result.stdout + result.stderr
    [answer] = json.loads(result.stdout)
    return answer


def fields(answer: Classified) -> tuple[str, float, dict[str, float], float]:
    """A worker's answer without its tile."""
    return answer.label, answer.confidence, answer.probabilities, answer.coverage


def same_answer(worker: Classified, predicted: dict) -> bool:
    return (worker.label, worker.confidence, worker.coverage, worker.probabilities) == (
        predicted["label"], predicted["confidence"], predicted["coverage"],
        {entry["label"]: entry["probability"] for entry in predicted["top_k"]})


def test_the_same_pixels_are_the_same_input_and_answer_in_every_format_and_source(
        tmp_path: Path, classifier: Classifier, checkpoint: Path) -> None:
    pixels = reference_pixels()
    expected = classifier.model_input(DecodedTile(torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()))
    files = lossless_files(pixels)
    (tmp_path / "files").mkdir()
    cases: dict[str, TileFile] = {}
    for name, data in files.items():
        (tmp_path / "files" / name).write_bytes(data)
        cases[name] = TileFile(Tile(None, None, None, name), tmp_path / "files" / name)
    for kind, reader in archives(tmp_path, files["rgba.png"], image_format="png").items():
        cases[f"rgba.png in {kind}"] = TileFile(TILE, reader=reader)
    raster = RasterSource.at(cog(tmp_path / "tile.tif", TILE, pixels), settings=load_settings())
    cases["COG"] = TileFile(TILE, reader=raster.reader(load_settings()))
    server_root = tmp_path / "server" / str(TILE.z) / str(TILE.x)
    server_root.mkdir(parents=True)
    (server_root / f"{TILE.y}.jpg").write_bytes(files["rgba.png"])  # the server names every tile .jpg
    with serving(tmp_path / "server") as server:
        cases["rgba.png over HTTP"] = TileFile(TILE, reader=UrlSource.at(
            server.template, settings=load_settings()).reader(load_settings()))
        inputs = {name: load(classifier, case) for name, case in cases.items()}
        answers = {name: worker_answer(classifier, case) for name, case in cases.items()}
    assert len(cases) == 9
    for name, loaded in inputs.items():  # bitwise, each one
        assert loaded.coverage == 1.0 and torch.equal(loaded.tensor, expected), name
    reference = predict_answer(checkpoint, tmp_path / "files" / "rgb.png")
    for name, answer in answers.items():
        assert fields(answer) == fields(answers["rgb.png"]), name  # identical probabilities, not merely close
        assert same_answer(answer, reference), name
    for name in files:  # and `tileclass predict` on each file gives the worker's answer for it
        assert same_answer(answers[name], predict_answer(checkpoint, tmp_path / "files" / name)), name


def test_a_rasters_nodata_is_measured_as_the_tiles_coverage(tmp_path: Path, classifier: Classifier) -> None:
    pixels = np.maximum(reference_pixels(), 1)
    pixels[:, : SIZE - 56] = 0  # nodata on all but the 56 rightmost columns
    raster = RasterSource.at(cog(tmp_path / "edge.tif", TILE, pixels, nodata=0), settings=load_settings())
    tile = TileFile(TILE, reader=raster.reader(load_settings()))
    with ThreadPoolExecutor(1) as pool:
        default = classify_tiles(classifier, [tile], chunk_size=1, pool=pool)
        everything = classify_tiles(classifier, [tile], chunk_size=1, pool=pool, min_coverage=0)
    assert [e.reason for e in default.empty] == ["partial: 21% data"]  # 56 / 256 = 21.9%
    assert [c.coverage for c in everything.classified] == [56 / SIZE]


def jpeg_tile() -> bytes:
    with Image.open(EUROSAT / "Forest" / "Forest_1001.jpg") as image:
        return encode(image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BICUBIC), "JPEG", quality=90)


def test_a_jpeg_is_the_same_input_and_answer_from_a_file_an_archive_and_a_tile_server(
        tmp_path: Path, classifier: Classifier, checkpoint: Path) -> None:
    jpeg = jpeg_tile()
    expected = classifier.model_input(decode_tile(jpeg))  # one decoded pixel array
    (tmp_path / "tile.jpg").write_bytes(jpeg)
    cases = {"file": TileFile(Tile(None, None, None, "tile.jpg"), tmp_path / "tile.jpg")}
    for kind, reader in archives(tmp_path, jpeg, image_format="jpeg").items():
        cases[kind] = TileFile(TILE, reader=reader)
    server_root = tmp_path / "server" / str(TILE.z) / str(TILE.x)
    server_root.mkdir(parents=True)
    (server_root / f"{TILE.y}.jpg").write_bytes(jpeg)
    with serving(tmp_path / "server") as server:
        cases["HTTP"] = TileFile(TILE, reader=UrlSource.at(server.template, settings=load_settings()).reader(
            load_settings()))
        inputs = {name: load(classifier, case) for name, case in cases.items()}
        answers = {name: worker_answer(classifier, case) for name, case in cases.items()}
    reference = predict_answer(checkpoint, tmp_path / "tile.jpg")
    for name in cases:
        assert torch.equal(inputs[name].tensor, expected), name
        assert fields(answers[name]) == fields(answers["file"]) and same_answer(answers[name], reference), name


def load(classifier: Classifier, case: TileFile) -> ModelInput:
    """The model input the worker's pipeline makes of a tile (its pool's function for the tile's kind)."""
    if case.reader is not None:
        loaded = load_from_source(case.tile, case.reader, classifier)
    else:
        assert case.path is not None
        loaded = load_tile(case.path, classifier)
    assert isinstance(loaded, ModelInput)
    return loaded


def gdal2tiles_copy(source: Path, target: Path, tiles: list[Tile]) -> None:
    """What ``gdal2tiles.py --xyz`` makes of a tree: each tile an RGBA PNG with exactly its decoded RGB pixels."""
    for tile in tiles:
        with Image.open(source / str(tile.path)) as image:
            rgba = image.convert("RGB").convert("RGBA")
        out = target / f"{tile.z}/{tile.x}/{tile.y}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        rgba.save(out)


def fringe_tile(path: Path, *, column: int = 8) -> Path:
    """A 256 px tile holding one ``column`` px column of imagery at its left edge, transparent elsewhere."""
    with Image.open(EUROSAT / "Forest" / "Forest_1002.jpg") as image:
        imagery = image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    tile = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    tile.paste(imagery.crop((0, 0, column, SIZE)), (0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    tile.save(path)
    return path


def test_a_tree_rewritten_as_rgba_pngs_gives_identical_probabilities_and_its_fringe_is_empty(
        tmp_path: Path, classifier: Classifier) -> None:
    tiles = []
    for i, name in enumerate(["Forest_1003", "Highway_1001", "Residential_1002", "SeaLake_1001", "Forest_1004",
                              "Highway_1002", "Residential_1003", "SeaLake_1002", "Highway_1003"]):
        tile = Tile(16, 31105 + i % 3, 25105 + i // 3, f"16/{31105 + i % 3}/{25105 + i // 3}.jpg")
        with Image.open(EUROSAT / name.split("_")[0] / f"{name}.jpg") as image:
            picture = image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BICUBIC)
        (tmp_path / "tree" / str(tile.path)).parent.mkdir(parents=True, exist_ok=True)
        picture.save(tmp_path / "tree" / str(tile.path), quality=90)
        tiles.append(tile)
    gdal2tiles_copy(tmp_path / "tree", tmp_path / "rgba", tiles)
    fringe = [Tile(16, 31108, 25105 + i, f"16/31108/{25105 + i}.png") for i in range(3)]
    for tile in fringe:
        fringe_tile(tmp_path / "rgba" / str(tile.path))
    rgba = [Tile(t.z, t.x, t.y, f"{t.z}/{t.x}/{t.y}.png") for t in tiles]
    with ThreadPoolExecutor(2) as pool:
        original = classify_tiles(classifier, [TileFile(t, tmp_path / "tree" / str(t.path)) for t in tiles],
                                  chunk_size=4, pool=pool)
        rewritten = classify_tiles(classifier, [TileFile(t, tmp_path / "rgba" / str(t.path)) for t in rgba],
                                   chunk_size=4, pool=pool)
        edge = classify_tiles(classifier, [TileFile(t, tmp_path / "rgba" / str(t.path)) for t in fringe],
                              chunk_size=4, pool=pool)
    assert len(original.classified) == len(rewritten.classified) == 9
    for before, after in zip(original.classified, rewritten.classified, strict=True):
        assert before.tile.xyz() == after.tile.xyz()
        assert (after.label, after.confidence, after.probabilities, after.coverage) == (
            before.label, before.confidence, before.probabilities, 1.0), before.tile
    assert edge.classified == [] and [e.reason for e in edge.empty] == ["partial: 3% data"] * 3


def test_a_fringe_tile_is_empty_by_default_and_classified_on_the_mean_pixel_at_bound_0(
        tmp_path: Path, classifier: Classifier, checkpoint: Path) -> None:
    path = fringe_tile(tmp_path / "16/31108/25106.png")
    tile = TileFile(Tile(16, 31108, 25106, "16/31108/25106.png"), path)
    with ThreadPoolExecutor(1) as pool:
        default = classify_tiles(classifier, [tile], chunk_size=1, pool=pool)
        everything = classify_tiles(classifier, [tile], chunk_size=1, pool=pool, min_coverage=0)
    assert default.classified == [] and [e.reason for e in default.empty] == ["partial: 3% data"]
    [answer] = everything.classified
    assert answer.coverage == 8 / 256
    # What the model saw: the training data's mean pixel where the tile has no data, not black.
    seen = load_tile(path, classifier, min_coverage=0)
    assert isinstance(seen, ModelInput)
    assert (seen.tensor[:, :, 2:] == torch.tensor(FILL, dtype=torch.uint8).view(3, 1, 1)).all()
    assert not (seen.tensor[:, :, :1] == torch.tensor(FILL, dtype=torch.uint8).view(3, 1, 1)).all()
    # `tileclass predict` says the same, with the same bound.
    assert predict_answer(checkpoint, path) == {"image": str(path), "coverage": 8 / 256,
                                                        "empty": "partial: 3% data"}
    assert same_answer(answer, predict_answer(checkpoint, path, "--min-coverage", "0"))
    shown = CliRunner().invoke(app, ["predict", str(checkpoint), str(path), "--device", "cpu"])
    assert (shown.exit_code, shown.stdout) == (0, f"{path}  empty: partial: 3% data\n")
    shown = CliRunner().invoke(app, ["predict", str(checkpoint), str(path), "--device", "cpu", "--min-coverage", "0"])
    assert shown.stdout.splitlines()[0] == f"{path}  (partial: 3% data)"


def test_the_device_decode_path_makes_its_input_with_the_one_function(classifier: Classifier,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU, with nvJPEG's one call replaced by torchvision's CPU decoder (as in test_device_decode.py): what
    the device path makes of a JPEG is exactly the CPU path's input."""
    from torchvision.io import ImageReadMode, decode_jpeg

    def cpu_jpeg(datas: list[bytes], device: torch.device) -> list[torch.Tensor]:
        return [decode_jpeg(torch.frombuffer(bytearray(d), dtype=torch.uint8), mode=ImageReadMode.RGB) for d in datas]

    monkeypatch.setattr(device_decode, "decode_jpegs_on_device", cpu_jpeg)
    jpeg = jpeg_tile()
    [made] = device_decode.decode_chunk([jpeg], classifier, lambda data: pytest.fail("the device refused it"))
    assert isinstance(made, ModelInput) and made.coverage == 1.0
    assert torch.equal(made.tensor, classifier.decode(jpeg).tensor)


@pytest.mark.gpu
def test_nvjpeg_then_the_float_resize_is_within_one_level_of_the_cpu_input(checkpoint: Path) -> None:
    on_gpu = Classifier.load(checkpoint, device="cuda", precision="fp32")
    on_cpu = Classifier.load(checkpoint, device="cpu", precision="fp32")
    jpeg = jpeg_tile()
    [made] = device_decode.decode_chunk([jpeg], on_gpu, lambda data: pytest.fail("nvJPEG refused a plain JPEG"))
    assert isinstance(made, ModelInput) and made.tensor.device.type == "cuda" and made.coverage == 1.0
    difference = (made.tensor.cpu().int() - on_cpu.decode(jpeg).tensor.int()).abs()
    assert int(difference.max()) <= 1, f"{int((difference > 1).sum())} values differ by more than 1 level"
    with ThreadPoolExecutor(1) as pool:  # and the worker's pipeline decodes it on the device
        outcome = classify_tiles(on_gpu, [TileFile(TILE, reader=_Bytes(jpeg))], chunk_size=1, pool=pool,
                                 device_decode=True)
    assert [c.coverage for c in outcome.classified] == [1.0]


class _Bytes:
    """A reader that holds one tile's bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, tile: Tile) -> bytes:
        return self.data
