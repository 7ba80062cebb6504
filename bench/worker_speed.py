"""Benchmark: tiles/s of real `tileclass worker` processes against the tutorial loop and the bare model, in one run.

Measures on this machine, with the same ResNet (random weights: speed does not depend on them):

- (a) the tutorial loop, the baseline: its ``predict_image``, one image at a time, ``PIL.Image.open`` ->
  ``Resize(224)`` -> ``ToTensor`` -> fp32 ResNet50 (the tutorial's head, eval mode), with 1 thread and with all
  cores, the faster of the two counting;
- (b) the best bare forward throughput of ``model.predict.Classifier`` on pre-made uint8 tensors, with the worker's
  arch, chunk size, precision, compilation and process/thread split (P processes timed together);
- (c) end to end: real ``tileclass worker`` processes (the same split) classifying a region of real JPEG tiles read
  from files, into a SQLite results database through the embedded filesystem broker; timed from the first batch
  sent to the job's completion, after a warm-up job has loaded (and compiled) the model in every process.

The region is made of the real EuroSAT patches (``--eurosat``, default the full set: bench/lib/eurosat.py) resized
from 64 to 224 px and saved as JPEG (quality 90) in a z/x/y tree, so the model's input size needs no further resize
and decoding is that of a 224 px JPEG. Everything lives in a temporary folder that is removed at the end.

Usage: ``.venv/bin/python -m bench.worker_speed [--quick] [--json]`` (full: about 4 minutes on 2 cores, most of it
``torch.compile``; ``--quick`` measures less but still compiles). ``--help`` lists the knobs.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.lib.eurosat import eurosat_rgb
from bench.lib.worker_runs import Region, timed_job, use_results_database

CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
           "Residential", "River", "SeaLake")
ZOOM, X0, Y0, WIDTH = 17, 70000, 42000, 100
TUTORIAL_SECONDS = 12.0


@dataclass(frozen=True)
class Plan:
    arch: str
    image_size: int
    processes: int
    threads: int
    chunk: int
    message: int
    precision: str
    compile: bool
    tutorial_images: int
    forward_seconds: float
    tiles: int
    broker: str
    eurosat: Path


def parse_args() -> tuple[Plan, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Fewer images and tiles (still compiles): ~2.5 min.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object instead of the table.")
    parser.add_argument("--parts", default="abc", help="Which of (a), (b), (c) to measure (default abc).")
    parser.add_argument("--eurosat", type=Path,
                        help="EuroSAT RGB folder with at least <Class>_1..107.jpg per class (default: the full set, "
                             "bench/lib/eurosat.py).")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (tiles, database, workers.log).")
    parser.add_argument("--arch", default="resnet50", help="Worker model architecture (default resnet50).")
    parser.add_argument("--processes", type=int, default=2, help="Worker processes (default 2 on 2 cores).")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads per worker process (default 1).")
    parser.add_argument("--chunk", type=int, default=16, help="Tiles per forward pass (TILECLASS_WORKER_BATCH_SIZE).")
    parser.add_argument("--message", type=int, default=64, help="Tiles per queued batch (default 64).")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16 or int8 for (b) and (c).")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="Eager (b) and (c).")
    parser.add_argument("--tiles", type=int, default=None, help="Tiles in the timed region (default 4000, quick 800).")
    parser.add_argument("--broker", default="filesystem://",
                        help="Broker for (c): filesystem:// (embedded, default; idle workers poll it every second) "
                             "or redis://host:port/db (a database the benchmark may empty).")
    args = parser.parse_args()
    plan = Plan(arch=args.arch, image_size=224, processes=args.processes, threads=args.threads, chunk=args.chunk,
                message=args.message, precision=args.precision, compile=args.compile,
                tutorial_images=16 if args.quick else 48, forward_seconds=5.0 if args.quick else 12.0,
                tiles=args.tiles or (800 if args.quick else 4000), broker=args.broker,
                eurosat=args.eurosat or eurosat_rgb())
    return plan, args


# ---------------------------------------------------------------------------------------------------- data


def make_region(folder: Path, count: int, eurosat: Path, *, first: int = 0) -> list[tuple[int, int, int, str]]:
    """``count`` 224 px JPEG tiles made from real EuroSAT patches, as z/x/y.jpg rows starting at row ``first``."""
    from PIL import Image

    sources = [eurosat / name / f"{name}_{i}.jpg" for i in range(1, 101) for name in CLASSES]
    encoded: dict[Path, bytes] = {}
    rows = []
    for i in range(first, first + count):
        source = sources[i % len(sources)]
        if source not in encoded:
            buffer = io.BytesIO()
            Image.open(source).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR).save(
                buffer, format="JPEG", quality=90)
            encoded[source] = buffer.getvalue()
        x, y = X0 + i % WIDTH, Y0 + i // WIDTH
        path = folder / str(ZOOM) / str(x) / f"{y}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encoded[source])
        rows.append((ZOOM, x, y, f"{ZOOM}/{x}/{y}.jpg"))
    return rows


def make_checkpoint(folder: Path, plan: Plan) -> Path:
    import torch

    from model.arch import build_model
    from model.checkpoint import CheckpointMeta, save_checkpoint
    from model.images import decode_tile
    from model.transforms import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(0)
    meta = CheckpointMeta(arch=plan.arch, class_names=CLASSES, image_size=plan.image_size, mean=IMAGENET_MEAN,
                          std=IMAGENET_STD)
    path = folder / f"{plan.arch}.pt"
    # 64 real patches for int8 quantization, as `tileclass train` keeps them (EuroSAT images other than the tiles',
    # which are patches 1..100 of each class).
    images = torch.stack([decode_tile((plan.eurosat / name / f"{name}_{i}.jpg").read_bytes()).pixels
                          for i in range(101, 108) for name in CLASSES][:64])
    save_checkpoint(path, model=build_model(plan.arch, len(CLASSES)), meta=meta, quantization_images=images)
    return path


# ------------------------------------------------------------------------------------------- (a) tutorial


def tutorial_loop(files: list[Path], threads: int) -> tuple[float, float]:
    """Images/s and images per CPU-second of the tutorial's predict_image loop (fp32 ResNet50, tutorial head,
    one image at a time)."""
    import torch
    from PIL import Image
    from torchvision import transforms

    from model.arch import build_model

    torch.set_num_threads(threads)
    model = build_model("resnet50", len(CLASSES), head="tutorial").eval()
    test_transforms = transforms.Compose([transforms.Resize(224), transforms.ToTensor()])

    def predict_image(path: Path) -> int:  # the tutorial's, with Image.open moved in (it also runs autograd)
        image = Image.open(path)
        image_tensor = test_transforms(image).float().unsqueeze_(0)
        output = model(image_tensor)
        return int(output.data.cpu().numpy().argmax())

    for path in files[:3]:
        predict_image(path)
    started, cpu, done = time.perf_counter(), time.process_time(), 0
    for path in files:  # all of them, or as many as fit in TUTORIAL_SECONDS (a busy machine can be very slow)
        predict_image(path)
        done += 1
        if time.perf_counter() - started > TUTORIAL_SECONDS and done >= 8:
            break
    return done / (time.perf_counter() - started), done / (time.process_time() - cpu)


# ---------------------------------------------------------------------------------------- (b) bare forward


def _forward_child(checkpoint: str, plan: Plan, barrier: Any, results: Any) -> None:
    import torch

    from model.predict import Classifier

    torch.set_num_threads(plan.threads)
    classifier = Classifier.load(Path(checkpoint), device="cpu", precision=plan.precision, compile=plan.compile,
                                 batch_size=plan.chunk)
    batch = torch.randint(0, 256, (plan.chunk, 3, plan.image_size, plan.image_size), dtype=torch.uint8)
    for _ in range(3):
        classifier.predict_tensors(batch)
    barrier.wait()
    images, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < plan.forward_seconds:
        classifier.predict_tensors(batch)
        images += plan.chunk
    results.put((images, time.perf_counter() - started, time.process_time() - cpu, classifier.precision,
                 getattr(classifier, "compiled", None)))


def bare_forward(checkpoint: Path, plan: Plan) -> tuple[float, float, str, bool | None]:
    """Summed images/s of ``plan.processes`` processes running forward passes at the same time, and images per
    CPU-second (which other work on a shared machine changes far less than images per second)."""
    context = mp.get_context("spawn")
    barrier, results = context.Barrier(plan.processes), context.Queue()
    os.environ["OMP_NUM_THREADS"] = str(plan.threads)  # read by each child's OpenMP when torch loads
    children = [context.Process(target=_forward_child, args=(str(checkpoint), plan, barrier, results))
                for _ in range(plan.processes)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=900) for _ in children]
    for child in children:
        child.join()
    rate = sum(images / seconds for images, seconds, _, _, _ in outcomes)
    per_cpu = sum(o[0] for o in outcomes) / sum(o[2] for o in outcomes)
    return rate, per_cpu, outcomes[0][3], outcomes[0][4]


# ------------------------------------------------------------------------------------------ (c) end to end


def end_to_end(folder: Path, checkpoint: Path, plan: Plan) -> dict[str, Any]:
    """Tiles/s of real worker processes over a region, after a warm-up job; returns the measurements."""
    model_hash = use_results_database(folder, plan.broker, checkpoint)
    warm_rows = make_region(folder / "warm", plan.processes * plan.chunk, plan.eurosat)
    rows = make_region(folder / "region", plan.tiles, plan.eurosat)
    argv = ["--device", "cpu", "--processes", str(plan.processes), "--threads-per-process", str(plan.threads),
            "--batch-size", str(plan.chunk), "--precision", plan.precision,
            "--compile" if plan.compile else "--no-compile", "--loglevel", "info"]
    # One chunk-sized batch per process: each process loads and compiles the model on its batch.
    warm = Region(folder / "warm", [warm_rows[i * plan.chunk : (i + 1) * plan.chunk] for i in range(plan.processes)])
    timed = Region(folder / "region", [rows[i : i + plan.message] for i in range(0, len(rows), plan.message)])
    return timed_job(folder, model_hash, argv, warm=warm, timed=timed)


# ------------------------------------------------------------------------------------------------- report


def conditions() -> dict[str, Any]:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__,
            "cpu_capability": str(torch.backends.cpu.get_cpu_capability()), "python": platform.python_version(),
            "load_average_at_start": round(os.getloadavg()[0], 2)}


def main() -> None:
    plan, args = parse_args()
    info = conditions()
    say = (lambda *_: None) if args.json else (lambda text: print(text, file=sys.stderr, flush=True))
    folder = Path(tempfile.mkdtemp(prefix="tileclass-bench-worker-"))
    try:
        if args.keep:
            say(f"keeping {folder}")
        say(f"making {plan.tiles} tiles of 224 px from EuroSAT patches and a random-weight {plan.arch} checkpoint")
        checkpoint = make_checkpoint(folder, plan)
        sample_rows = make_region(folder / "sample", plan.tutorial_images + 3, plan.eurosat)
        sample = [folder / "sample" / row[3] for row in sample_rows]
        tutorial_by_threads: dict[int, float] = {}
        tutorial_per_cpu = float("nan")
        forward, forward_per_cpu, precision, compiled, e2e = float("nan"), float("nan"), plan.precision, None, {}
        if "a" in args.parts:
            say("(a) tutorial loop …")
            # The tutorial runs with torch's default threads (all cores). On a busy machine OpenMP's barriers make
            # that far slower than one thread, so the faster of the two is the baseline (the conservative choice).
            measured = {t: tutorial_loop(sample, t) for t in sorted({1, info["cores"]})}
            tutorial_by_threads = {t: rate for t, (rate, _) in measured.items()}
            tutorial_per_cpu = measured[1][1]
            say(f"    {max(tutorial_by_threads.values()):.1f} images/s (by torch threads: {tutorial_by_threads}); "
                f"{tutorial_per_cpu:.1f} per CPU-second with 1 thread")
        if "b" in args.parts:
            say(f"(b) bare forward, {plan.processes} x {plan.threads} thread(s) (compiling: about a minute) …")
            forward, forward_per_cpu, precision, compiled = bare_forward(checkpoint, plan)
            say(f"    {forward:.1f} images/s, {forward_per_cpu:.1f} per CPU-second ({precision}, compiled {compiled})")
        if "c" in args.parts:
            say("(c) tileclass worker end to end (starting and compiling first) …")
            e2e = end_to_end(folder, checkpoint, plan)
            say(f"    {e2e['tiles_per_second']:.1f} tiles/s, {e2e['tiles_per_cpu_second']:.1f} per CPU-second")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    info["load_average_at_end"] = round(os.getloadavg()[0], 2)
    tutorial = max(tutorial_by_threads.values(), default=float("nan"))
    worker = e2e.get("tiles_per_second", float("nan"))
    worker_per_cpu = e2e.get("tiles_per_cpu_second", float("nan"))
    result = {"plan": {**plan.__dict__, "eurosat": str(plan.eurosat)}, "conditions": info,
              "a_tutorial_images_per_s": round(tutorial, 2),
              "a_by_threads": {str(k): round(v, 2) for k, v in tutorial_by_threads.items()},
              "b_forward_images_per_s": round(forward, 2), "c_worker_tiles_per_s": round(worker, 2),
              "c_seconds": round(e2e.get("seconds", float("nan")), 2),
              "warmup_seconds": round(e2e.get("warmup_seconds", float("nan")), 1), "precision": precision,
              "compiled": compiled, "c_over_a": round(worker / tutorial, 2), "c_over_b": round(worker / forward, 3),
              "a_per_cpu_second": round(tutorial_per_cpu, 2), "b_per_cpu_second": round(forward_per_cpu, 2),
              "c_per_cpu_second": round(worker_per_cpu, 2),
              "c_over_b_per_cpu_second": round(worker_per_cpu / forward_per_cpu, 3),
              "c_over_a_per_cpu_second": round(worker_per_cpu / tutorial_per_cpu, 2)}
    if args.json:
        # Parts not measured are null, not NaN, which strict JSON readers (jq, JavaScript) refuse.
        unmeasured = {key for key, value in result.items() if isinstance(value, float) and math.isnan(value)}
        print(json.dumps({key: None if key in unmeasured else value for key, value in result.items()}))
        return
    threads = ", ".join(f"{k}: {v:.1f}" for k, v in tutorial_by_threads.items())
    print(f"conditions: {info}")
    print(f"worker: {plan.arch} {plan.image_size} px, {plan.processes} process(es) x {plan.threads} thread(s), "
          f"chunks of {plan.chunk}, {plan.message} tiles per queued batch, {precision}, compiled {compiled}, "
          f"broker {plan.broker}")
    print(f"(a) tutorial loop, fp32 resnet50, 1 image at a time : {tutorial:8.1f} images/s "
          f"(best of torch threads {threads})")
    print(f"(b) bare forward on pre-made tensors               : {forward:8.1f} images/s")
    print(f"(c) tileclass worker, JPEG files -> SQLite         : {worker:8.1f} tiles/s "
          f"({plan.tiles} tiles in {e2e.get('seconds', float('nan')):.1f} s; "
          f"warm-up {e2e.get('warmup_seconds', float('nan')):.0f} s)")
    print(f"(c)/(a) = {result['c_over_a']:.1f}x   (goal >= 15x)")
    print(f"(c)/(b) = {result['c_over_b']:.2f}    (goal >= 0.9)")
    print("per CPU-second (the work of other processes on a shared machine factored out): "
          f"(a) {tutorial_per_cpu:.1f}, (b) {forward_per_cpu:.1f}, (c) {worker_per_cpu:.1f}; "
          f"(c)/(b) = {result['c_over_b_per_cpu_second']:.2f}, (c)/(a) = {result['c_over_a_per_cpu_second']:.1f}x "
          f"per core (x {info['cores']} cores of workers vs a one-thread tutorial on a quiet machine)")


if __name__ == "__main__":
    main()
