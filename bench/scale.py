"""Benchmark: how many tiles/s one Redis plus one results database carry, and so how many GPUs they can feed.

In one run, on this machine:

- (a) stand-in workers: 1, 4 and 16 (up to 32) lightweight worker processes (bench/lib/scale_standin.py: the product's
  task, run markers, recording and metrics, with the model replaced by fixed probabilities), one database
  connection each, take real batches from a private Redis (append-only file, fsync every second) and write real
  upserts into a fresh PostgreSQL database, then into a SQLite file (the embedded default's database). All
  batches are queued first; the workers start consuming together; the rate is tiles / (last commit - start).
  With it, the CPU seconds Redis, PostgreSQL (its whole cluster), the workers and this process used.
- (b) the baseline: the same rows upserted bare, from one connection, in batches of the same size: psycopg
  ``executemany`` of ``INSERT ... ON CONFLICT DO UPDATE`` and ``COPY`` into a temporary table plus one
  ``INSERT ... SELECT ... ON CONFLICT``; sqlite3 ``executemany`` on SQLite.
- (c) the metrics' cost per batch (worker.metrics in multiprocess mode), against a batch's time in (a).
- (d) real workers: ``tileclass worker --device cpu`` with 1 and then 2 processes of one thread, each the median
  of ``--runs`` jobs over real EuroSAT tiles (bench/lib/scale_real.py), wall-clock and per CPU-second.

Everything shares this machine's cores: read the CPU seconds, not only the rates (docs/BENCHMARKS.md, "Scale").
Usage: ``.venv/bin/python -m bench.scale [--quick] [--json]``; ``--help`` lists the knobs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.lib import REPO
from bench.lib.bulk_results import CLASSES, temporary_database
from bench.lib.eurosat import eurosat_rgb
from bench.lib.scale_bare import bare_upserts
from bench.lib.scale_services import (
    CpuMeter,
    StandinFleet,
    postgres_cluster,
    private_redis,
    publish_job,
    wait_done,
    worker_env,
)
from core.migrate import upgrade
from core.settings import Settings
from core.tiles import Tile

MODEL = "5ca1e" + "0" * 59
BARE_MODEL = "ba5e" + "0" * 60


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="Tiny sizes: checks the script in about a minute.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object as the last line.")
    parser.add_argument("--workers", default="1,4,16", help="Stand-in worker counts on PostgreSQL (at most 32).")
    parser.add_argument("--sqlite-workers", default="1,4", help="Stand-in worker counts on SQLite.")
    parser.add_argument("--batch", type=int, default=1024, help="Tiles per message (the producer's default 1024).")
    parser.add_argument("--batches", type=int, default=64, help="Messages per stand-in run (at least 4 a worker).")
    parser.add_argument("--real-tiles", type=int, default=3000, help="Tiles per real-worker job.")
    parser.add_argument("--real-message", type=int, default=64, help="Tiles per message for the real workers.")
    parser.add_argument("--real-arch", default="resnet18", help="Real workers' model (random weights).")
    parser.add_argument("--real-size", type=int, default=64, help="Its input size (EuroSAT tiles are 64 px).")
    parser.add_argument("--precision", default="auto",
                        help="Real workers' precision (auto: bf16 where the CPU has it).")
    parser.add_argument("--runs", type=int, default=3, help="Timed real-worker jobs per process count (median).")
    parser.add_argument("--parts", default="abcd", help="Which of (a)-(d) to run.")
    parser.add_argument("--eurosat", type=Path, help="EuroSAT RGB folder of the real workers' tiles (default: the "
                                                     "full set: bench.lib.eurosat).")
    args = parser.parse_args()
    if args.quick:
        args.workers, args.sqlite_workers, args.batch, args.batches = "1,2", "1", 256, 8
        args.real_tiles, args.real_message, args.runs = 128, 32, 1
    return args


def tiles_of(count: int) -> list[Tile]:
    return [Tile(17, 60000 + i % 1000, 40000 + i // 1000, f"17/{60000 + i % 1000}/{40000 + i // 1000}.jpg")
            for i in range(count)]


def prepare(url: str) -> dict[str, Any]:
    """Migrate a fresh database and register the stand-in's and the baseline's models; returns the job source."""
    from core.db import session_scope
    from core.models.registry import register_model

    upgrade(url)
    with session_scope(url) as session:
        for digest in (MODEL, BARE_MODEL):
            register_model(session, model_hash=digest, arch="stand-in", class_names=CLASSES, image_size=64,
                           path="/nonexistent/stand-in.pt")
    return {"kind": "folder", "name": "bench", "path": "/nonexistent/tiles", "layout": "xyz:{z}/{x}/{y}.{ext}"}


def standin_run(dialect: str, workers: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """(a) for one worker count, with its own Redis and a fresh database."""
    batches = max(args.batches, 4 * workers)
    tiles = tiles_of(batches * args.batch)
    with private_redis() as (redis_url, redis_process), temporary_database(dialect) as url:
        source = prepare(url)
        settings = Settings(database_url=url, broker_url=redis_url, visibility_timeout=3600)
        job = publish_job(settings, model_hash=MODEL, source=source, tiles=tiles, batch_size=args.batch)
        env = worker_env({"TILECLASS_DATABASE_URL": url, "TILECLASS_BROKER_URL": redis_url})
        with StandinFleet(workers, env, folder) as fleet:
            fleet.wait_ready(settings)
            meter = CpuMeter(redis_process, postgres_cluster(url) if dialect == "postgresql" else None,
                             fleet.psutil_processes())
            meter.start()
            started = fleet.go(settings)
            finished = wait_done(settings, job, timeout=3600, processes=fleet.processes)
            cpu = meter.stop()
        seconds = finished - started
    return {"workers": workers, "tiles": len(tiles), "batches": batches, "seconds": round(seconds, 3),
            "tiles_per_s": round(len(tiles) / seconds), "cpu_s": cpu,
            "batch_ms": round(1000 * seconds * workers / batches, 1)}


def bare_run(dialect: str, args: argparse.Namespace) -> dict[str, float]:
    """(b): the same number of rows, upserted bare into a fresh database of ``dialect``."""
    with temporary_database(dialect) as url:
        prepare(url)
        return bare_upserts(url, tiles_of(args.batches * args.batch), args.batch, BARE_MODEL)


def metrics_overhead(batch: int) -> float:
    """Microseconds the worker's metrics add to one batch of ``batch`` tiles (multiprocess mode, as launched)."""
    code = f"""
import time
from worker import metrics
started = time.perf_counter()
for _ in range(200):
    times = metrics.StageTimes()
    for _ in range({batch}):
        times.add("read", 1e-3); times.add("decode", 1e-3)  # per tile, as the decode threads do
    times.add("inference", 0.1); times.add("write", 0.1)
    metrics.queue_wait(time.time() - 1)
    metrics.batch_recorded(job_id=7, model_hash="ab" * 32, classified={batch}, failed=0, empty=0, times=times,
                           started=time.perf_counter())
    metrics.batch_outcome("done")
print((time.perf_counter() - started) / 200 * 1e6)
"""
    with tempfile.TemporaryDirectory(prefix="tileclass-scale-prom-") as prom:
        env = os.environ | {"PROMETHEUS_MULTIPROC_DIR": prom, "PYTHONPATH": str(REPO)}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return round(float(out.stdout.strip()), 1)


def real_part(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from bench.lib.scale_real import make_model, make_region, measure

    with private_redis() as (redis_url, _), temporary_database("postgresql") as url:
        upgrade(url)
        root = folder / "tiles"
        tiles = make_region(root, args.real_tiles, args.eurosat or eurosat_rgb())
        settings = Settings(database_url=url, broker_url=redis_url, model_dir=folder / "models")
        model = make_model(folder, args.real_arch, args.real_size, settings)
        source = {"kind": "folder", "name": "bench", "path": str(root), "layout": "xyz:{z}/{x}/{y}.{ext}"}
        env = worker_env({"TILECLASS_DATABASE_URL": url, "TILECLASS_BROKER_URL": redis_url,
                          "TILECLASS_MODEL_DIR": str(folder / "models"), "TILECLASS_DATA_DIR": str(folder / "state")})
        by_count = {str(n): measure(n, settings=settings, env=env, tiles=tiles, source=source, model=model,
                                    message=args.real_message, runs=args.runs, folder=folder, precision=args.precision)
                    for n in (1, 2)}
    one, two = by_count["1"], by_count["2"]
    return {"tiles": len(tiles), "arch": args.real_arch, "image_size": args.real_size, **by_count,
            "ratio_2_to_1": round(two["tiles_per_s"] / one["tiles_per_s"], 2),
            "ratio_2_to_1_per_cpu_s": round(two["tiles_per_cpu_s"] / one["tiles_per_cpu_s"], 2)}


def conditions() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()], "date": time.strftime("%Y-%m-%d")}


def main() -> None:
    args = parse_args()
    summary: dict[str, Any] = {"conditions": conditions(), "batch": args.batch}
    with tempfile.TemporaryDirectory(prefix="tileclass-scale-") as tmp:
        folder = Path(tmp)
        if "a" in args.parts:
            for dialect, counts in (("postgresql", args.workers), ("sqlite", args.sqlite_workers)):
                runs = [standin_run(dialect, int(n), args, folder) for n in counts.split(",")]
                summary[dialect] = runs
                for run in runs:
                    print(f"{dialect:10} {run['workers']:>2} stand-in workers: {run['tiles_per_s']:>7} tiles/s "
                          f"({run['tiles']} tiles in {run['seconds']} s); CPU s {run['cpu_s']}", flush=True)
                summary[f"{dialect}_bare"] = bare = bare_run(dialect, args) if "b" in args.parts else {}
                for key, rate in bare.items():
                    print(f"{dialect:10} bare {key}: {rate} tiles/s", flush=True)
                best = max(run["tiles_per_s"] for run in runs)
                summary[f"{dialect}_ceiling_tiles_per_s"] = best
                if bare:
                    summary[f"{dialect}_ceiling_to_bare"] = round(best / max(bare.values()), 2)
        if "c" in args.parts:
            summary["metrics_us_per_batch"] = metrics_overhead(args.batch)
            if "postgresql" in summary:
                batch_ms = summary["postgresql"][0]["batch_ms"]
                summary["metrics_share_of_a_batch"] = round(summary["metrics_us_per_batch"] / 1000 / batch_ms, 5)
            print(f"metrics: {summary['metrics_us_per_batch']} µs per batch of {args.batch} tiles", flush=True)
        if "d" in args.parts:
            summary["real"] = real = real_part(args, folder)
            print(f"real workers ({real['arch']}, {real['tiles']} tiles): 1 process {real['1']['tiles_per_s']} "
                  f"tiles/s ({real['1']['tiles_per_cpu_s']}/CPU s), 2 processes {real['2']['tiles_per_s']} "
                  f"({real['2']['tiles_per_cpu_s']}/CPU s): {real['ratio_2_to_1']}x (goal >= 1.8x)", flush=True)
    summary["conditions"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
