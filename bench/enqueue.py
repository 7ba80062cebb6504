"""Benchmark: walk + enqueue tiles/s against a bare ``find ROOT -type f | wc -l``, and the producer's peak memory.

Builds XYZ trees of empty tiles under /tmp/tileclass-bench-enqueue (kept, with a marker, for the next run), then
for each tree size runs, each in a fresh process so that peak RSS belongs to that run alone:

- ``find ROOT -type f | wc -l`` (the baseline; page cache warmed by a first, untimed run),
- walk only: ``core.sources.walk.walk`` over the whole tree,
- walk + enqueue: ``producer.enqueue.enqueue`` publishing to a local Redis (database 14, emptied before and after)
  with a results database in SQLite, ``max_queued`` large enough that no worker is needed.

Usage: ``.venv/bin/python -m bench.enqueue [--sizes 50000,250000] [--batch-sizes 256,1024,4096] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.lib import REPO
from bench.lib.trees import build_tree

REDIS_URL = "redis://127.0.0.1:6379/14"


def time_find(root: Path, repeat: int) -> tuple[int, float]:
    """Files and the median seconds of ``find ROOT -type f | wc -l``, after an untimed run warms the page cache."""
    command = f"find {root} -type f | wc -l"
    subprocess.run(command, shell=True, check=True, capture_output=True)
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        out = subprocess.run(command, shell=True, check=True, capture_output=True, text=True).stdout
        runs.append(time.perf_counter() - started)
    return int(out) - 1, sorted(runs)[len(runs) // 2]  # minus the marker file


def run_child(mode: str, root: Path, batch_size: int, repeat: int = 1) -> dict[str, float]:
    """The run with the median rate of ``repeat`` runs (the machine is shared: single runs are noisy)."""
    runs = sorted((_run_child(mode, root, batch_size) for _ in range(repeat)), key=lambda r: r["tiles"] / r["seconds"])
    return runs[len(runs) // 2] | {"peak_rss_mib": max(r["peak_rss_mib"] for r in runs)}


def _run_child(mode: str, root: Path, batch_size: int) -> dict[str, float]:
    flush_redis()
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "TILECLASS_DATABASE_URL": f"sqlite:///{state}/bench.db", "TILECLASS_BROKER_URL": REDIS_URL,
               "TILECLASS_DATA_DIR": state}
        argv = [sys.executable, "-m", "bench.enqueue", "--child", mode, str(root), str(batch_size)]
        out = subprocess.run(argv, env=env, cwd=REPO, check=True, capture_output=True, text=True).stdout
    flush_redis()
    return json.loads(out.strip().splitlines()[-1])


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def child(mode: str, root: Path, batch_size: int) -> None:
    """One measured run in this process; prints tiles, seconds and peak RSS as JSON."""
    from core.sources.layouts import Layout
    from core.sources.walk import walk

    layout = Layout.parse()
    startup = 0.0
    if mode == "walk":
        started = time.perf_counter()
        tiles = sum(len(chunk.tiles) for chunk in walk(root, layout))
        seconds = time.perf_counter() - started
    else:
        tiles, seconds, startup = _enqueue(root, layout, batch_size)
    print(json.dumps({"tiles": tiles, "seconds": seconds, "startup": startup, "peak_rss_mib": _peak_rss_mib()}))


def _enqueue(root: Path, layout: object, batch_size: int) -> tuple[int, float, float]:
    from core.celery_app import connected_app, queued_messages
    from core.db import session_scope
    from core.messages import CLASSIFY_QUEUE
    from core.migrate import ensure_schema
    from core.models.registry import register_model
    from core.settings import get_settings
    from core.sources import FolderSource
    from producer.enqueue import EnqueueRequest, enqueue
    from producer.pipeline import Target

    settings = get_settings()
    ensure_schema()
    model_hash = "b" * 64
    with session_scope() as session:
        register_model(session, model_hash=model_hash, arch="resnet18", class_names=["a", "b"], image_size=64,
                       path="/bench.pt")
    app = connected_app(settings)

    def request(tree: Path) -> EnqueueRequest:
        source = FolderSource.at(tree, layout=layout, settings=settings)  # type: ignore[arg-type]
        return EnqueueRequest(Target(source, None, model_hash, batch_size))

    # Warm up on a one-tile tree: imports, the broker connection and SQL compilation are a fixed cost per run.
    started = time.perf_counter()
    warm = enqueue(request(build_tree(1)), app=app, max_queued=1_000_000)
    startup = time.perf_counter() - started
    started = time.perf_counter()
    result = enqueue(request(root), app=app, max_queued=1_000_000)
    seconds = time.perf_counter() - started
    assert queued_messages(CLASSIFY_QUEUE, app) == result.stats.batches + warm.stats.batches
    return result.stats.enqueued, seconds, startup


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50000,250000", help="Tree sizes in tiles, comma-separated.")
    parser.add_argument("--batch-sizes", default="256,1024,4096", help="Batch sizes for the largest tree.")
    parser.add_argument("--repeat", type=int, default=5, help="Runs per measurement; the median is reported.")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "ROOT", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), int(args.child[2]))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"cpus={os.cpu_count()} load average={load} python={sys.version.split()[0]} redis={REDIS_URL} "
          f"median of {args.repeat} runs")
    for size in sizes:
        root = build_tree(size)
        files, find_seconds = time_find(root, args.repeat)
        find_rate = files / find_seconds
        print(f"\n{size:,} tiles: find -type f | wc -l  {find_rate:>12,.0f} files/s  ({find_seconds:.3f} s)")
        walked = run_child("walk", root, 1024, args.repeat)
        rate = walked["tiles"] / walked["seconds"]
        print(f"  walk only                      {rate:>12,.0f} tiles/s  ratio to find {rate / find_rate:.2f}  "
              f"peak RSS {walked['peak_rss_mib']:.0f} MiB")
        for batch_size in batch_sizes if size == sizes[-1] else [1024]:
            done = run_child("enqueue", root, batch_size, args.repeat)
            assert done["tiles"] == size, done
            rate = done["tiles"] / done["seconds"]
            print(f"  walk + enqueue (batch {batch_size:>5})    {rate:>12,.0f} tiles/s  ratio to find "
                  f"{rate / find_rate:.2f}  peak RSS {done['peak_rss_mib']:.0f} MiB  "
                  f"(+ {done['startup']:.2f} s startup: imports, connections, first job)")


if __name__ == "__main__":
    main()
