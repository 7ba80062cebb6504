"""GPU check: the predictor and the worker's pipeline on a CUDA device, against this machine's CPU (see gpu_check.sh).

Steps, each bounded in time (the whole run aims at under 5 minutes on one H100-class GPU):

1. tiles: 256 px JPEG files (a map tile's size), EuroSAT patches from ``--tiles-dir`` (default
   the full set where bench/lib/eurosat.py finds it without downloading) upscaled, else generated smooth random
   colour fields;
2. a random-weight ResNet50 checkpoint (224 px, 10 classes) saved with ``model.checkpoint.save_checkpoint``: the
   model every speed is measured with;
3. the host's own rate: 256 px JPEG files read, decoded and resized to 224 px on 1 and on all (up to 16) threads,
   without a model: what host-side decoding could feed a GPU at best;
4. CPU reference: fp32 predictions of the first ``--check`` tiles on this machine's CPU by ``--checkpoint`` (a
   trained model: agreement between random weights' near-uniform outputs means little), else by the ResNet50;
5. on ``cuda`` in fp32 and bf16 (and bf16 compiled unless ``--no-compile``): the predictions of the same tiles
   must match the CPU's (fp32: probabilities within 1e-3; bf16: within 0.05, and top-1 the same wherever the CPU's
   top two differ by more than 0.05), and how often bf16's top-1 is the device's fp32 one; then images/s of the
   bare predictor on pre-made tensors (over chunk sizes), and end to end through the worker's pipeline
   (``worker.pipeline.classify_tiles``: read, decode, resize, chunked forward passes) with the JPEGs decoded on the
   CPU's threads and then on the device (``worker.device_decode``), with the GPU's busy share from ``nvidia-smi``
   and its peak memory;
6. end to end through real ``tileclass worker`` processes on the embedded broker and SQLite, with CPU and device
   decoding and one or two processes per GPU (bench/lib/gpu_workers.py; ``--no-workers`` skips it).

Prints one line per measurement and a JSON summary last (``--out`` writes it to a file too: ``device``,
``bare_images_per_s`` by precision, ``e2e_tiles_per_s`` by decode path and precision, ``workers_tiles_per_s`` by
configuration, ``e2e_over_bare``, ``agreement``, ``host_decode_tiles_per_s`` by threads, and every run); exits 1
if a check fails, 3 if a dependency is missing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
           "Residential", "River", "SeaLake")
GPU_SIZES = {"tiles": 4096, "check": 256, "chunk": 256, "seconds": 8.0, "worker_tiles": 16384}
DRY_RUN_SIZES = {"tiles": 64, "check": 16, "chunk": 16, "seconds": 2.0, "worker_tiles": 64}


def say(text: str) -> None:
    print(text, flush=True)


def tiles(folder: Path, count: int, eurosat: Path) -> tuple[list[Path], str]:
    """``count`` 256 px JPEG tile files (a map tile's size): EuroSAT patches upscaled when ``eurosat`` holds them
    (real content; upscaling adds no detail, but decoding costs what a real tile's does), else generated ones."""
    import numpy as np
    from PIL import Image

    sources = [eurosat / name / f"{name}_{i}.jpg" for i in range(1, count // len(CLASSES) + 2) for name in CLASSES]
    sources = [path for path in sources if path.is_file()][:count]
    rng = np.random.default_rng(0)
    files = []
    for i in range(count if not sources else len(sources)):
        if sources:
            image = Image.open(sources[i]).convert("RGB").resize((256, 256), Image.Resampling.BICUBIC)
        else:
            coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            image = Image.fromarray(coarse).resize((256, 256), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        path = folder / "tiles" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
        files.append(path)
    if sources:
        return files, f"{len(files)} EuroSAT patches from {eurosat} as 256 px JPEG tiles"
    return files, f"generated 256 px JPEG tiles (no EuroSAT at {eurosat})"


def checkpoint(folder: Path) -> Path:
    import torch

    from model.arch import build_model
    from model.checkpoint import CheckpointMeta, save_checkpoint
    from model.transforms import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(0)
    meta = CheckpointMeta(arch="resnet50", class_names=CLASSES, image_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    path = folder / "resnet50.pt"
    save_checkpoint(path, model=build_model("resnet50", len(CLASSES)), meta=meta)
    return path


def stacked(classifier: Any, files: list[Path]) -> Any:
    import torch

    return torch.stack([classifier.decode(path.read_bytes()).tensor for path in files])


def compare(reference: Any, probabilities: Any, precision: str) -> dict[str, Any]:
    """How far ``probabilities`` are from the CPU's fp32 ``reference``, and whether that is within tolerance."""
    diff = float((probabilities - reference).abs().max())
    top2 = reference.topk(2, dim=1).values
    tolerance = 1e-3 if precision == "fp32" else 0.05  # also the margin that makes a top-1 decided
    decided = (top2[:, 0] - top2[:, 1]) > tolerance
    agree = (probabilities.argmax(1) == reference.argmax(1))[decided]
    agreement = float(agree.float().mean()) if len(agree) else 1.0
    return {"max_abs_diff": round(diff, 6), "top1_agreement": round(agreement, 4), "decided": int(decided.sum()),
            "ok": diff <= tolerance and agreement == 1.0}


def repeated(images: Any, count: int) -> Any:
    """``count`` images: ``images`` repeated as often as needed."""
    return images.repeat((count + len(images) - 1) // len(images), 1, 1, 1)[:count].contiguous()


def predictor_rate(classifier: Any, batch: Any, seconds: float) -> float:
    import torch

    for _ in range(3):
        classifier.predict_tensors(batch)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    images, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        classifier.predict_tensors(batch)  # returns CPU tensors: synchronised every call
        images += len(batch)
    return images / (time.perf_counter() - started)


def host_decode_rate(classifier: Any, files: list[Path], threads: int) -> float:
    """Tiles/s of the worker's CPU path alone (read, decode, resize to the model's input) on ``threads`` threads:
    the most a GPU worker decoding on the host could be fed with."""
    from worker.pipeline import load_tile

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda path: load_tile(path, classifier), files[: threads * 4]))  # warm-up
        started = time.perf_counter()
        list(pool.map(lambda path: load_tile(path, classifier), files))
        return len(files) / (time.perf_counter() - started)


def pipeline_rate(classifier: Any, files: list[Path], chunk: int, decode_threads: int, *,
                  device_decode: bool) -> float:
    """Tiles/s of the worker's pipeline (read, decode, resize, chunked forward passes) over ``files``."""
    from core.tiles import Tile
    from worker.pipeline import TileFile, classify_tiles

    sources = [TileFile(Tile(None, None, None, str(path)), path) for path in files]
    with ThreadPoolExecutor(decode_threads) as pool:
        classify_tiles(classifier, sources[: chunk * 2], chunk_size=chunk, pool=pool,
                       device_decode=device_decode)  # warm-up
        started = time.perf_counter()
        outcome = classify_tiles(classifier, sources, chunk_size=chunk, pool=pool, device_decode=device_decode)
        seconds = time.perf_counter() - started
    if outcome.failures:
        raise SystemExit(f"the pipeline failed {len(outcome.failures)} tiles: {outcome.failures[0]}")
    return len(outcome.classified) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, help="Tiles through the pipeline per configuration (4096; dry run 64).")
    parser.add_argument("--check", type=int, help="Tiles compared with the CPU's predictions (256; dry run 16).")
    parser.add_argument("--chunk", type=int, help="Tiles per forward pass on the GPU (256; dry run 16).")
    parser.add_argument("--seconds", type=float, help="Seconds per bare-predictor measurement (8; dry run 2).")
    parser.add_argument("--worker-tiles", type=int,
                        help="Tiles per timed job of the real workers (16384; dry run 64).")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="Skip the compiled bf16 run.")
    parser.add_argument("--compile-mode", choices=("default", "reduce-overhead", "max-autotune"), default="default",
                        help="torch.compile mode of the compiled bf16 run: reduce-overhead replays CUDA graphs; "
                             "max-autotune tunes kernels for minutes (default: default).")
    parser.add_argument("--no-workers", dest="workers", action="store_false",
                        help="Skip the end-to-end runs through real tileclass worker processes.")
    from bench.lib.eurosat import eurosat_rgb

    # No download here: the device machine this check is for cannot reach the internet.
    parser.add_argument("--tiles-dir", type=Path, default=eurosat_rgb(download=False),
                        help="EuroSAT RGB folder (<Class>/<Class>_<n>.jpg) to read tiles from; generated if absent.")
    parser.add_argument("--device", default="cuda", help="Device to check (cpu: a dry run of this script).")
    parser.add_argument("--out", type=Path, help="Also write the JSON summary to this file.")
    parser.add_argument("--checkpoint", type=Path,
                        help="A trained checkpoint whose CPU and GPU predictions are compared (speed is always "
                             "measured with a random-weight ResNet50 at 224 px; without this, agreement is measured "
                             "with it too, which says little).")
    args = parser.parse_args()
    # A dry run on the CPU checks that the script works end to end; GPU-sized work would take it past its time limit.
    sizes = DRY_RUN_SIZES if args.device == "cpu" else GPU_SIZES
    for option, default in sizes.items():
        if getattr(args, option) is None:
            setattr(args, option, default)
    try:
        import torch

        from model.predict import Classifier
        from worker.pipeline import classify_tiles  # noqa: F401  (imports core, sqlalchemy, torchvision)
    except ImportError as exc:
        say(f"missing dependency: {exc} (install the project's requirements; this script installs nothing)")
        return 3
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        say("no CUDA device is visible to torch: nothing to check")
        return 3
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu (dry run)"
    summary: dict[str, Any] = {"device": name, "torch": torch.__version__,
                               "cpu_cores": len(os.sched_getaffinity(0)), "chunk": args.chunk, "runs": []}
    failed = False
    with tempfile.TemporaryDirectory(prefix="tileclass-gpu-check-") as tmp:
        folder = Path(tmp)
        files, source = tiles(folder, args.tiles, args.tiles_dir)
        files = (files * (args.tiles // len(files) + 1))[: args.tiles]
        summary["tiles"] = source
        say(f"{summary['device']}, torch {torch.__version__}, {summary['cpu_cores']} CPU cores; "
            f"{args.tiles} tiles: {source}")
        speed_path = checkpoint(folder)
        judged_path = args.checkpoint or speed_path
        summary["checkpoint"] = str(args.checkpoint) if args.checkpoint else "random-weight ResNet50, 224 px"
        cpu = Classifier.load(judged_path, device="cpu", precision="fp32")
        check = stacked(cpu, files[: args.check])
        started = time.perf_counter()
        reference = cpu.predict_tensors(check)
        say(f"CPU fp32 reference on {args.check} tiles: {time.perf_counter() - started:.1f} s")
        torch.set_num_threads(1)  # as in a GPU worker (worker/launch.py): the cores go to the decode threads
        threads = min(16, max(2, summary["cpu_cores"]))
        speed_model = cpu if args.checkpoint is None else Classifier.load(speed_path, device="cpu", precision="fp32")
        speed_images = check if args.checkpoint is None else stacked(speed_model, files[: args.check])
        summary["host_decode_tiles_per_s"] = {str(n): round(host_decode_rate(speed_model, files, n), 1)
                                              for n in sorted({1, threads})}
        say(f"host read + decode + resize to 224 px, no model, by threads: {summary['host_decode_tiles_per_s']}")
        configs = [("fp32", False), ("bf16", False)] + ([("bf16", True)] if args.compile else [])
        fp32_probabilities = reference  # the device's own fp32 predictions once its fp32 run has made them
        for precision, compiled in configs:
            started = time.perf_counter()
            # As the worker loads it: a compiled graph is built for the one chunk size.
            gpu = Classifier.load(speed_path, device=args.device, precision=precision, compile=compiled,
                                  batch_size=args.chunk if compiled else None,
                                  compile_mode=None if args.compile_mode == "default" else args.compile_mode)
            load_seconds = time.perf_counter() - started
            # The trained model is judged eagerly (compiling it too would cost the run another minute).
            judged = gpu if args.checkpoint is None else Classifier.load(judged_path, device=args.device,
                                                                           precision=precision)
            probabilities = judged.predict_tensors(check)
            match = compare(reference, probabilities, precision)
            bare = predictor_rate(gpu, repeated(speed_images, args.chunk), args.seconds)
            # Other chunk sizes, where the graph takes any (what the worker's batch size setting changes); a CPU dry
            # run would take minutes over them.
            sweep = () if compiled or args.device == "cpu" else (64, 512, 1024)
            by_chunk = {size: round(predictor_rate(gpu, repeated(speed_images, size), 3.0), 1) for size in sweep}
            # End to end from 256 px JPEG files: decoded on the CPU's threads, then on the device (nvJPEG; in a CPU
            # dry run torchvision's batched CPU decoder, through the same code).
            piped, busy = {}, {}
            for path_name, on_device in (("cpu", False), ("gpu", True)):
                with GpuSampler(enabled=args.device.startswith("cuda")) as sampler:
                    piped[path_name] = round(pipeline_rate(gpu, files, args.chunk, threads,
                                                           device_decode=on_device), 1)
                busy[path_name] = sampler.busy_fraction()
            peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None
            if precision == "fp32" and not compiled:
                fp32_probabilities = probabilities
            versus_fp32 = agreement(fp32_probabilities, probabilities)
            label = f"{precision}{' compiled' if getattr(gpu, 'compiled', False) else ''}"
            say(f"{args.device} {label:14s} predictions vs CPU: max |dp| {match['max_abs_diff']:.2e}, top-1 agreement "
                f"{match['top1_agreement']:.3f} on {match['decided']} tiles -> {'OK' if match['ok'] else 'MISMATCH'}; "
                f"top-1 same as the device's fp32 on {versus_fp32:.4f} of tiles; "
                f"bare predictor {bare:8.1f} images/s {by_chunk or ''}; worker pipeline ({threads} decode threads) "
                f"{piped['cpu']:8.1f} tiles/s with CPU decoding, {piped['gpu']:8.1f} with device decoding "
                f"(GPU busy {busy}); peak GPU memory {peak} GiB; load{' + compile' if compiled else ''} "
                f"{load_seconds:.0f} s")
            summary["runs"].append({"precision": precision, "compiled": getattr(gpu, "compiled", False),
                                    "compile_mode": args.compile_mode if compiled else None, **match,
                                    "agreement_with_fp32": versus_fp32,
                                    "predictor_images_per_s": round(bare, 1), "predictor_by_chunk": by_chunk,
                                    "e2e_tiles_per_s": piped, "gpu_busy_fraction": busy, "peak_memory_gib": peak,
                                    "load_seconds": round(load_seconds, 1)})
            failed |= not match["ok"]
            del gpu, judged
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        if args.workers:
            from bench.lib.gpu_workers import worker_rates

            summary["workers"] = worker_rates(files, speed_path, device=args.device, tiles=args.worker_tiles,
                                              chunk=args.chunk, say=say)
    summary |= headline(summary["runs"], summary.get("workers", {}))
    if args.out is not None:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary), flush=True)
    return 1 if failed else 0


def headline(runs: list[dict[str, Any]], workers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The summary's fixed keys (what bench/results/gpu-*.json holds): per precision, the best of its runs; the
    real workers' tiles/s; and the best end to end (pipeline and workers, which run bf16 where the GPU has it)
    over the best bare bf16 (else fp32) rate, the issue's goal being 0.8 or more."""
    bare: dict[str, float] = {}
    e2e: dict[str, dict[str, float]] = {}
    agree: dict[str, float] = {}
    for run in runs:
        precision = run["precision"]
        bare[precision] = max(bare.get(precision, 0.0), run["predictor_images_per_s"])
        for path_name, rate in run["e2e_tiles_per_s"].items():
            by_precision = e2e.setdefault(f"{path_name}_decode", {})
            by_precision[precision] = max(by_precision.get(precision, 0.0), rate)
        agree[f"{precision}_vs_cpu_fp32"] = min(agree.get(f"{precision}_vs_cpu_fp32", 1.0), run["top1_agreement"])
        if precision != "fp32":
            agree[f"{precision}_vs_fp32"] = min(agree.get(f"{precision}_vs_fp32", 1.0), run["agreement_with_fp32"])
    worker_rates = {name: run["tiles_per_s"] for name, run in workers.items()}
    reference = bare.get("bf16") or bare.get("fp32")
    best_pipeline = max((rate for by_precision in e2e.values() for rate in by_precision.values()), default=0.0)
    ratios = {"pipeline": round(best_pipeline / reference, 3) if reference else None,
              "workers": round(max(worker_rates.values()) / reference, 3) if reference and worker_rates else None}
    return {"bare_images_per_s": bare, "e2e_tiles_per_s": e2e, "workers_tiles_per_s": worker_rates,
            "e2e_over_bare": ratios, "agreement": agree}


def agreement(reference: Any, probabilities: Any) -> float:
    """The share of tiles whose top-1 class is the same in both."""
    return round(float((reference.argmax(1) == probabilities.argmax(1)).float().mean()), 4)


class GpuSampler:
    """The GPU's utilisation while a block runs, sampled by ``nvidia-smi`` every 100 ms (None without one)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled and shutil.which("nvidia-smi") is not None
        self.samples: list[float] = []
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> GpuSampler:
        if self.enabled:
            self._process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100", "-i",
                 "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is not None:
            self._process.terminate()
            output, _ = self._process.communicate(timeout=10)
            self.samples = [float(line) for line in output.split() if line.strip().replace(".", "", 1).isdigit()]

    def busy_fraction(self) -> float | None:
        return round(sum(self.samples) / len(self.samples) / 100, 3) if self.samples else None


if __name__ == "__main__":
    sys.exit(main())
