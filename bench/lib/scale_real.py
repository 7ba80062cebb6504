"""The real-worker part of bench/scale.py: 1 against 2 `tileclass worker --device cpu` processes of one thread.

Each run classifies a region of real EuroSAT JPEG tiles (a z/x/y tree) with a random-weight ResNet (speed does not
depend on the weights), through Redis into PostgreSQL, in messages of ``message`` tiles. The launcher is started
once per process count and warmed up with a first job until every process has loaded the model (its
``--metrics-port`` shows ``tileclass_model_cache_models``); then each timed job runs from its creation to its last
batch's commit. CPU time is that of the worker processes over the same window.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.lib.scale_services import cpu_seconds, free_port, publish_job, wait_done
from core.db import session_scope
from core.models.registry import register_checkpoint
from core.settings import Settings
from core.tiles import Tile

CLASSES = ("Forest", "Highway", "Residential", "SeaLake", "River")


def make_region(root: Path, count: int, eurosat: Path) -> list[Tile]:
    files = [eurosat / name / f"{name}_{i}.jpg" for i in range(1, count // len(CLASSES) + 2) for name in CLASSES]
    tiles = []
    for i, source in enumerate(files[:count]):
        x, y = 70000 + i % 64, 42000 + i // 64
        relative = f"17/{x}/{y}.jpg"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, root / relative)
        tiles.append(Tile(17, x, y, relative))
    return tiles


def make_model(folder: Path, arch: str, image_size: int, settings: Settings) -> str:
    import torch

    from model.arch import build_model
    from model.checkpoint import CheckpointMeta, save_checkpoint
    from model.transforms import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(0)
    meta = CheckpointMeta(arch=arch, class_names=CLASSES, image_size=image_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    path = folder / f"{arch}-{image_size}.pt"
    save_checkpoint(path, model=build_model(arch, len(CLASSES)), meta=meta)
    with session_scope(settings.database_url) as session:
        return register_checkpoint(session, checkpoint=path, settings=settings).hash


def loaded(port: int, model: str) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    prefix = f'tileclass_model_cache_models{{model="{model[:12]}"}}'
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def measure(processes: int, *, settings: Settings, env: dict[str, str], tiles: list[Tile], source: dict[str, Any],
            model: str, message: int, runs: int, folder: Path, precision: str) -> dict[str, Any]:
    """``runs`` timed jobs on ``processes`` worker processes; the median wall-clock and per-CPU-second rates."""
    port = free_port(19600)
    log = (folder / f"real-{processes}.log").open("ab")
    launcher = subprocess.Popen([str(Path(sys.executable).parent / "tileclass"), "worker", "--device", "cpu",
                                 "--processes", str(processes), "--threads-per-process", "1", "--no-compile",
                                 "--precision", precision, "--batch-size", "16", "--metrics-port", str(port),
                                 "--loglevel", "warning"], env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while loaded(port, model) < processes:  # warm-up jobs until every process holds the model
            if time.monotonic() > deadline or launcher.poll() is not None:
                raise RuntimeError(f"the workers did not all load the model; see {folder}/real-{processes}.log")
            job = publish_job(settings, model_hash=model, source=source, tiles=tiles[: message * processes * 2],
                              batch_size=message)
            wait_done(settings, job, timeout=300, processes=[launcher])
        children = psutil.Process(launcher.pid).children()
        results = []
        for _ in range(runs):
            before = sum(cpu_seconds(child) for child in children)
            started = time.time()
            job = publish_job(settings, model_hash=model, source=source, tiles=tiles, batch_size=message)
            finished = wait_done(settings, job, timeout=1800, processes=[launcher])
            cpu = sum(cpu_seconds(child) for child in children) - before
            seconds = finished - started
            results.append({"seconds": round(seconds, 3), "tiles_per_s": round(len(tiles) / seconds, 1),
                            "worker_cpu_s": round(cpu, 2), "tiles_per_cpu_s": round(len(tiles) / cpu, 1)})
    finally:
        launcher.terminate()
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            launcher.kill()
    return {"processes": processes, "runs": results,
            "tiles_per_s": statistics.median(r["tiles_per_s"] for r in results),
            "tiles_per_cpu_s": statistics.median(r["tiles_per_cpu_s"] for r in results)}
