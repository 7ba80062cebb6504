"""The GPU check's end-to-end step: real ``tileclass worker`` processes on the embedded broker and SQLite.

The check's 256 px JPEG tiles are laid out as a z/x/y region (hard links, repeated to ``tiles``), and one job of
them is timed through ``tileclass worker --device cuda`` for each configuration: JPEGs decoded on the CPU's threads
or on the GPU (``TILECLASS_WORKER_DECODE``), with one or two processes per GPU (``--per-gpu``). Workers run eagerly
(``--no-compile``): a compiled graph costs each process a minute of start-up, and the in-process runs of
bench/gpu_check.py show what compiling is worth. A dry run on the CPU times one process with CPU decoding.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from bench.lib.worker_runs import Region, Row, timed_job, use_results_database

ZOOM, X0, Y0, WIDTH = 17, 70000, 42000, 128
# (name, processes per GPU, decode setting): what the GPU run measures.
GPU_CONFIGS = (("1_process_cpu_decode", 1, "cpu"), ("1_process_gpu_decode", 1, "gpu"),
               ("2_processes_gpu_decode", 2, "gpu"))
DRY_RUN_CONFIGS = (("1_process_cpu_decode", 1, "cpu"),)


def region(root: Path, files: list[Path], count: int) -> list[Row]:
    """``count`` tiles under ``root`` as z/x/y.jpg rows: hard links to ``files``, repeated as often as needed."""
    rows = []
    for i in range(count):
        x, y = X0 + i % WIDTH, Y0 + i // WIDTH
        target = root / str(ZOOM) / str(x) / f"{y}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(files[i % len(files)], target)
        rows.append((ZOOM, x, y, f"{ZOOM}/{x}/{y}.jpg"))
    return rows


def batches(rows: list[Row], size: int) -> list[list[Row]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def worker_rates(files: list[Path], checkpoint: Path, *, device: str, tiles: int, chunk: int,
                 say: Any = print) -> dict[str, dict[str, Any]]:
    """Tiles/s of real workers over ``tiles`` tiles per configuration, each after a warm-up job of one batch per
    process; each configuration's numbers, keyed by its name."""
    on_gpu = device.startswith("cuda")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="tileclass-gpu-workers-") as tmp:
        folder = Path(tmp)
        model_hash = use_results_database(folder, "filesystem://", checkpoint)
        rows = region(folder / "region", files, tiles)
        message = chunk * 4  # a queued batch: four forward passes, so that reading ahead has something to do
        for name, per_gpu, decode in GPU_CONFIGS if on_gpu else DRY_RUN_CONFIGS:
            split = ["--device", "cuda", "--per-gpu", str(per_gpu)] if on_gpu else \
                ["--device", "cpu", "--processes", str(per_gpu), "--threads-per-process", "1"]
            argv = [*split, "--batch-size", str(chunk), "--no-compile", "--loglevel", "warning"]
            warm = Region(folder / "region", batches(rows[: per_gpu * chunk], chunk))
            timed = Region(folder / "region", batches(rows, message))
            measured = timed_job(folder, model_hash, argv, warm=warm, timed=timed, timeout=150,
                                 env={"TILECLASS_WORKER_DECODE": decode}, log_name=f"{name}.log")
            results[name] = {"tiles_per_s": round(measured["tiles_per_second"], 1), "tiles": timed.tiles,
                             "seconds": round(measured["seconds"], 2),
                             "warmup_seconds": round(measured["warmup_seconds"], 1),
                             "tiles_per_worker_cpu_second": round(measured["tiles_per_cpu_second"], 1)}
            say(f"tileclass worker {' '.join(argv)} (decode {decode}): {results[name]['tiles_per_s']:.1f} tiles/s "
                f"over {timed.tiles} tiles, warm-up {results[name]['warmup_seconds']:.0f} s")
    return results
