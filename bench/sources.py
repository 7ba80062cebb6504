"""Benchmark: reading tiles where they live (MBTiles, a tile server, a GeoTIFF) against tile files, in one run.

Three comparisons, each against a baseline measured in the same run on the same machine:

- (a) listing: the enqueue pipeline's pass over a region (walk or list -> drop classified -> batch, as ``enqueue
  --dry-run`` runs it, no broker) of a 1,000,000-tile MBTiles against the same number of tile files (empty files
  in z/x/y columns of 500, shared with bench.enqueue: bench.lib.trees);
- (b) classifying: the worker's pipeline (``worker.pipeline.classify_tiles``: decode-ahead threads, chunks on the
  model) over the same real 224 px JPEG tiles read from files, from an MBTiles, and from a loopback tile server
  (``python -m http.server`` in its own process, sharing the two cores), in tiles/s and in tiles per CPU-second of
  the classifying process; the goal is at least 0.9x the files' rate;
- (c) rasters: 256 px tiles cut from a GeoTIFF mosaic and classified, against the same tiles pre-cut as files.

The model is a random-weight ResNet18 at 224 px (speed does not depend on the weights), on the CPU at the
worker's default precision, not compiled. Tiles are real EuroSAT patches enlarged to tile size.

Usage: ``.venv/bin/python -m bench.sources [--quick] [--json] [--eurosat DIR]``; the last line printed is a JSON
summary.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.lib.trees import build_tree

CLASSES = ("AnnualCrop", "Forest", "Highway", "Residential", "River", "SeaLake")


# ----------------------------------------------------------------------------------------------- (a) listing


def listing(size: int, work: Path) -> dict[str, Any]:
    from core.migrate import upgrade
    from core.settings import get_settings
    from core.sources import FolderSource, MBTilesSource
    from core.sources.layouts import Layout
    from producer.pipeline import Target, dry_run
    from testkit.archives import write_mbtiles

    tree = build_tree(size)
    database = work / "results.db"
    os.environ["TILECLASS_DATABASE_URL"] = f"sqlite:///{database}"
    get_settings.cache_clear()
    upgrade(os.environ["TILECLASS_DATABASE_URL"])
    rows = [(16, 30000 + i // 500, 20000 + i % 500, b"x") for i in range(size)]
    archive = write_mbtiles(work / "million.mbtiles", rows, image_format="png")
    del rows
    settings = get_settings()
    sources = {"files": FolderSource.at(tree, layout=Layout.parse(), settings=settings),
               "mbtiles": MBTilesSource.at(archive, settings=settings)}
    result: dict[str, Any] = {"tiles": size}
    for name, source in sources.items():
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            stats = dry_run(Target(source, None, "0" * 64))
            best = min(best, time.perf_counter() - started)
            assert stats.enqueued == size, (name, stats.enqueued)
        result[f"{name}_tiles_per_s"] = round(size / best)
    result["ratio_mbtiles_vs_files"] = round(result["mbtiles_tiles_per_s"] / result["files_tiles_per_s"], 2)
    return result


# ------------------------------------------------------------------------------------------- (b) classifying


def jpeg_tiles(folder: Path, count: int, size: int, eurosat: Path, *, width: int = 32) -> list[Any]:
    from PIL import Image

    from core.tiles import Tile

    sources = [eurosat / name / f"{name}_{i}.jpg" for i in range(1, 200) for name in CLASSES]
    tiles = []
    for i in range(count):
        tile = Tile(17, 70000 + i % width, 42000 + i // width, f"17/{70000 + i % width}/{42000 + i // width}.jpg")
        target = folder / str(tile.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.open(sources[i % len(sources)]).convert("RGB").resize((size, size), Image.Resampling.BILINEAR).save(
            buffer, format="JPEG", quality=90)
        target.write_bytes(buffer.getvalue())
        tiles.append(tile)
    return tiles


def classifier(work: Path) -> Any:
    import torch

    from model.arch import build_model
    from model.checkpoint import CheckpointMeta, save_checkpoint
    from model.predict import Classifier
    from model.transforms import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(0)
    path = work / "resnet18.pt"
    save_checkpoint(path, model=build_model("resnet18", len(CLASSES)), meta=CheckpointMeta(
        arch="resnet18", class_names=CLASSES, image_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD))
    return Classifier.load(path, device="cpu", precision="auto")


def timed(model: Any, files: list[Any], *, repeat: int = 2) -> tuple[float, float]:
    """Best tiles/s of the worker's pipeline over ``files`` and tiles per CPU-second of this process."""
    from worker.pipeline import classify_tiles

    best, per_cpu = 0.0, 0.0
    with ThreadPoolExecutor(2) as pool:
        classify_tiles(model, files[:32], chunk_size=16, pool=pool)  # warm-up: allocations, first connections
        for _ in range(repeat):
            cpu, started = _cpu(), time.perf_counter()
            outcome = classify_tiles(model, files, chunk_size=16, pool=pool)
            elapsed, used = time.perf_counter() - started, _cpu() - cpu
            assert not outcome.failures and len(outcome.classified) == len(files), outcome.failures[:3]
            if len(files) / elapsed > best:
                best, per_cpu = len(files) / elapsed, len(files) / used
    return best, per_cpu


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def classifying(count: int, work: Path, eurosat: Path) -> dict[str, Any]:
    from core.settings import get_settings
    from core.sources import FolderSource, MBTilesSource, UrlSource
    from core.sources.layouts import Layout
    from testkit.archives import write_mbtiles
    from worker.pipeline import TileFile

    folder = work / "jpeg"
    tiles = jpeg_tiles(folder, count, 224, eurosat)
    archive = write_mbtiles(work / "tiles.mbtiles", [(*t.xyz(), (folder / t.path).read_bytes()) for t in tiles])
    model = classifier(work)
    settings = get_settings()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                               str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        url = UrlSource.at(f"http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.jpg", settings=settings).reader(settings)
        mbtiles = MBTilesSource.at(archive, settings=settings).reader(settings)
        files = FolderSource.at(folder, layout=Layout.parse(), settings=settings).reader(settings)
        runs = {
            "files": [TileFile(t, reader=files) for t in tiles],
            "mbtiles": [TileFile(t, reader=mbtiles) for t in tiles],
            "server": [TileFile(t, reader=url) for t in tiles],
        }
        result: dict[str, Any] = {"tiles": count}
        for name, files in runs.items():
            rate, per_cpu = timed(model, files)
            result[f"{name}_tiles_per_s"], result[f"{name}_tiles_per_cpu_s"] = round(rate, 1), round(per_cpu, 1)
    finally:
        server.terminate()
        server.wait(timeout=10)
    for name in ("mbtiles", "server"):
        result[f"ratio_{name}_vs_files"] = round(result[f"{name}_tiles_per_s"] / result["files_tiles_per_s"], 2)
    return result


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the loopback tile server did not start")


# ----------------------------------------------------------------------------------------------- (c) rasters


def rasters(count: int, work: Path, eurosat: Path) -> dict[str, Any]:
    from core.settings import get_settings
    from core.sources import FolderSource, RasterSource
    from core.sources.layouts import Layout
    from testkit.rasters import mosaic
    from worker.pipeline import TileFile

    folder = work / "precut"
    tiles = jpeg_tiles(folder, count, 256, eurosat, width=16)
    path = mosaic(work / "ortho.tif", {t: folder / str(t.path) for t in tiles})
    source = RasterSource.at(path, settings=get_settings())
    cut = [tile for chunk in source.tiles(None) for tile in chunk.tiles]
    assert len(cut) == count, len(cut)
    model = classifier(work)
    reader = source.reader(get_settings())
    precut = FolderSource.at(folder, layout=Layout.parse(), settings=get_settings()).reader(get_settings())
    precut_rate, precut_cpu = timed(model, [TileFile(t, reader=precut) for t in tiles])
    raster_rate, raster_cpu = timed(model, [TileFile(t, reader=reader) for t in cut])
    return {"tiles": count, "precut_tiles_per_s": round(precut_rate, 1), "geotiff_tiles_per_s": round(raster_rate, 1),
            "precut_tiles_per_cpu_s": round(precut_cpu, 1), "geotiff_tiles_per_cpu_s": round(raster_cpu, 1),
            "ratio_geotiff_vs_precut": round(raster_rate / precut_rate, 2)}


def conditions() -> dict[str, Any]:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    flags = Path("/proc/cpuinfo").read_text()
    return {"cpu": cpu, "amx": "amx_tile" in flags, "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Small sizes (checks that everything runs).")
    parser.add_argument("--json", action="store_true", help="Print only the JSON summary.")
    parser.add_argument("--eurosat", type=Path, help="EuroSAT RGB folder (default: the full set: bench.lib.eurosat).")
    args = parser.parse_args()
    import torch

    from bench.lib.eurosat import eurosat_rgb

    torch.set_num_threads(2)
    sizes = (20_000, 96, 64) if args.quick else (1_000_000, 1024, 256)
    eurosat = args.eurosat or eurosat_rgb()
    work = Path(tempfile.mkdtemp(prefix="tileclass-bench-sources-"))
    try:
        summary = {"conditions": conditions(), "listing": listing(sizes[0], work),
                   "classifying": classifying(sizes[1], work, eurosat), "rasters": rasters(sizes[2], work, eurosat)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not args.json:
        for part in ("listing", "classifying", "rasters"):
            print(part, json.dumps(summary[part]))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
