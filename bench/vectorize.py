"""Benchmark: ``tileclass vectorize`` on 1,000,000 results, against a bare read of the same rows.

For each database (a temporary SQLite file; a fresh temporary PostgreSQL database on 127.0.0.1:5432, dropped
afterwards) it creates the schema with the migrations, registers a model and one job, and fills ``tile_results``
with ``--side`` x ``--side`` tiles of zoom 17 by bulk insert (1000 x 1000 = 1,000,000 by default). The labels look
like a land-cover map: smooth patches of 10 classes from a few overlapping waves, with 3% of the tiles given a
random class (a classifier's speckle), so the map has large regions and many one-tile ones.

Each measurement runs in a fresh child process, which reports its own wall time and peak RSS:

(a) the bare read: the job's rows, the columns vectorize reads (x, y, label, confidence, uncertain), streamed
    through SQLAlchemy Core (``yield_per``, as vectorize reads them) and dropped;
(b) vectorize: ``core.vectorize.vectorize_job`` into ``core.polygon_files.write_polygons`` (a GeoPackage), as the
    command does, once per ``--blocks`` size (a smaller block makes more pieces to merge across block edges).

and prints (b)/(a). Goal (issue 29): under 60 s and 1 GiB, and at most 3x the bare read, on 2 cores.

Usage: ``.venv/bin/python -m bench.vectorize [--side 1000] [--blocks 1024,256] [--only sqlite|postgresql] [--json]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.lib.bulk_results import CLASSES, fill, temporary_database
from core.db import dispose_engines, session_scope
from core.jobs import create_job
from core.migrate import upgrade
from core.models.registry import register_model

ZOOM, X0, Y0 = 17, 62000, 50000
SPECKLE = 0.03


def label_of(x: int, y: int, rng: random.Random) -> int:
    """A smooth patchwork of classes (waves of a few hundred metres) with some random tiles in it."""
    if rng.random() < SPECKLE:
        return rng.randrange(len(CLASSES))
    wave = math.sin(x / 37.0) + math.cos(y / 23.0) + math.sin((x + y) / 61.0)  # within -3..3
    return min(int((wave + 3.0) / 6.0 * len(CLASSES)), len(CLASSES) - 1)


def rows(digest: str, job: int, side: int) -> Iterator[tuple[Any, ...]]:
    """The job's results in ``bench.lib.bulk_results.COLUMNS`` order."""
    rng = random.Random(29)
    stamp = "2026-01-01 00:00:00.000000"
    documents = [json.dumps({name: (0.82 if name == label else 0.02) for name in CLASSES}) for label in CLASSES]
    for x in range(X0, X0 + side):
        for y in range(Y0, Y0 + side):
            index = label_of(x, y, rng)
            confidence = 0.5 + 0.5 * rng.random()
            yield (digest, ZOOM, x, y, "ortho", f"{ZOOM}/{x}/{y}.png", CLASSES[index], confidence, documents[index],
                   job, stamp)


def prepare(url: str, side: int) -> int:
    upgrade(url)
    digest = hashlib.sha256(b"vectorize-bench").hexdigest()
    with session_scope(url) as session:
        register_model(session, model_hash=digest, arch="resnet50", class_names=CLASSES, image_size=64,
                       path="/models/bench.pt")
        job = create_job(session, model_hash=digest).id
    fill(url, rows(digest, job, side))
    dispose_engines()
    return job


def child(mode: str, url: str, job: int, block: int, out: str) -> dict[str, Any]:
    """One measurement, in this (fresh) process: wall time and this process's peak RSS."""
    from sqlalchemy import select

    from core.polygon_files import write_polygons
    from core.queries import select_results
    from core.schema import TileResult
    from core.vectorize import VectorizeOptions, vectorize_job

    started = time.perf_counter()
    with session_scope(url, read_only=True) as session:
        if mode == "bare":
            stmt = select(TileResult.x, TileResult.y, TileResult.label, TileResult.confidence, TileResult.uncertain)
            result = session.connection().execute(stmt.where(TileResult.job_id == job)
                                                  .execution_options(yield_per=50_000))
            count = sum(len(part) for part in result.partitions())
        else:
            selection = select_results(session, job_id=job)
            polygons = vectorize_job(session, selection=selection, options=VectorizeOptions(block=block))
            count = write_polygons(polygons, Path(out), fmt="gpkg")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    return {"mode": mode, "block": block, "seconds": round(seconds, 2), "count": count,
            "peak_rss_mib": round(peak / 2**20, 1)}


def measure(mode: str, url: str, job: int, block: int, folder: str) -> dict[str, Any]:
    out = os.path.join(folder, f"polygons-{block}.gpkg")
    done = subprocess.run([sys.executable, "-m", "bench.vectorize", "--child", mode, url, str(job), str(block), out],
                          capture_output=True, text=True, check=True)
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def run(dialect: str, *, side: int, blocks: list[int]) -> dict[str, Any]:
    with temporary_database(dialect) as url, tempfile.TemporaryDirectory(prefix="tileclass-vectorize-") as folder:
        started = time.perf_counter()
        job = prepare(url, side)
        filled = time.perf_counter() - started
        bare = measure("bare", url, job, 0, folder)
        runs = [measure("vectorize", url, job, block, folder) for block in blocks]
        dispose_engines()
    for found in runs:
        found["ratio_to_bare"] = round(found["seconds"] / bare["seconds"], 2)
    return {"rows": side * side, "fill_s": round(filled, 1), "bare": bare, "vectorize": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1000, help="tiles per side of the job (side² results)")
    parser.add_argument("--blocks", default="1024,256", help="block sizes to vectorize with, comma-separated")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], help="run one database only")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "URL", "JOB", "BLOCK", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, url, job, block, out = args.child
        print(json.dumps(child(mode, url, int(job), int(block), out)))
        return
    blocks = [int(value) for value in args.blocks.split(",")]
    summary: dict[str, Any] = {}
    for dialect in ("sqlite", "postgresql"):
        if args.only in (None, dialect):
            summary[dialect] = found = run(dialect, side=args.side, blocks=blocks)
            print(f"\n{dialect}: {found['rows']:,} results (filled in {found['fill_s']} s)")
            bare = found["bare"]
            print(f"  (a) bare read            {bare['seconds']:>7.2f} s  peak RSS {bare['peak_rss_mib']:>7.1f} MiB")
            for one in found["vectorize"]:
                print(f"  (b) vectorize, block {one['block']:<5} {one['seconds']:>7.2f} s  peak RSS "
                      f"{one['peak_rss_mib']:>7.1f} MiB  {one['count']:,} polygons  {one['ratio_to_bare']}x (a)")
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
