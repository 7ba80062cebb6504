"""Benchmark: ``tileclass diff`` of two jobs of 1,000,000 results each, against a bare read of the same rows.

For each database (a temporary SQLite file; a fresh temporary PostgreSQL database on 127.0.0.1:5432, dropped
afterwards) it creates the schema with the migrations, registers two models with one job each (results are kept
once per model and tile, so two jobs over the same tiles are two models' today), and fills ``tile_results`` with
``--side`` x ``--side`` tiles of zoom 17 for each job by bulk insert. Job A's labels are patches of 16 x 16 tiles;
job B has the same, except one tile in ``1 / --every`` (``(x + y) % every == 0``) given the next class: the
changes, 10% by default.

Each measurement runs in a fresh child process, which reports its own wall time and peak RSS:

(a) the bare read: both jobs' rows, the columns the diff reads, streamed and dropped;
(b) the matrix: ``core.diff.diff_sides`` and ``diff_jobs`` (``tileclass diff A B``);
(c) the files: (b) and the changed tiles written by ``core.change_files.write_changes`` to a GeoPackage and a
    GeoJSON file (``tileclass diff A B --out DIR``).

Usage: ``.venv/bin/python -m bench.diff [--side 1000] [--every 10] [--only sqlite|postgresql] [--json]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
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

ZOOM, X0, Y0 = 17, 70000, 40000
STAMP = "2026-01-01 00:00:00.000000"


def rows(jobs: list[tuple[str, int]], side: int, every: int) -> Iterator[tuple[Any, ...]]:
    """Both jobs' results in ``bench.lib.bulk_results.COLUMNS`` order."""
    documents = [json.dumps({name: (0.82 if name == label else 0.02) for name in CLASSES}) for label in CLASSES]
    for n, (digest, job) in enumerate(jobs):
        for x in range(X0, X0 + side):
            for y in range(Y0, Y0 + side):
                index = (x // 16 * 7 + y // 16 * 3) % len(CLASSES)
                if n == 1 and (x + y) % every == 0:
                    index = (index + 1) % len(CLASSES)
                yield (digest, ZOOM, x, y, "ortho", f"{ZOOM}/{x}/{y}.png", CLASSES[index], 0.82, documents[index],
                       job, STAMP)


def prepare(url: str, side: int, every: int) -> list[int]:
    upgrade(url)
    jobs = []
    with session_scope(url) as session:
        for name in ("a", "b"):
            digest = hashlib.sha256(f"diff-bench-{name}".encode()).hexdigest()
            register_model(session, model_hash=digest, arch="resnet50", class_names=CLASSES, image_size=64,
                           path=f"/models/{name}.pt")
            jobs.append((digest, create_job(session, model_hash=digest).id))
    fill(url, rows(jobs, side, every))
    dispose_engines()
    return [job for _, job in jobs]


def child(mode: str, url: str, job_a: int, job_b: int, out: str) -> dict[str, Any]:
    """One measurement, in this (fresh) process: wall time and this process's peak RSS."""
    from sqlalchemy import select

    from core.change_files import write_changes
    from core.diff import diff_jobs, diff_sides, iter_changes
    from core.schema import TileResult

    started = time.perf_counter()
    found: dict[str, Any] = {"mode": mode}
    with session_scope(url, read_only=True) as session:
        if mode == "bare":
            stmt = select(TileResult.z, TileResult.x, TileResult.y, TileResult.label, TileResult.confidence,
                          TileResult.uncertain, TileResult.coverage).where(TileResult.job_id.in_([job_a, job_b]))
            result = session.connection().execute(stmt.execution_options(yield_per=50_000))
            found["count"] = sum(len(part) for part in result.partitions())
        else:
            a, b = diff_sides(session, job_a, job_b)
            document = diff_jobs(session, a, b).as_dict()
            found["count"] = document["changed"]["tiles"]
            if mode == "files":
                folder = Path(out)
                folder.mkdir(exist_ok=True)
                write_changes(iter_changes(session, a, b), folder)
    found["seconds"] = round(time.perf_counter() - started, 3)
    found["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
    return found


def measure(mode: str, url: str, jobs: list[int], folder: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.diff", "--child", mode, url, *map(str, jobs), folder],
                          capture_output=True, text=True, check=True)
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def run(dialect: str, *, side: int, every: int) -> dict[str, Any]:
    with temporary_database(dialect) as url, tempfile.TemporaryDirectory(prefix="tileclass-diff-") as folder:
        started = time.perf_counter()
        jobs = prepare(url, side, every)
        filled = time.perf_counter() - started
        found = {mode: measure(mode, url, jobs, folder) for mode in ("bare", "matrix", "files")}
        dispose_engines()
    for mode in ("matrix", "files"):
        found[mode]["ratio_to_bare"] = round(found[mode]["seconds"] / found["bare"]["seconds"], 2)
    return {"rows_per_job": side * side, "fill_s": round(filled, 1), **found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1000, help="tiles per side of each job (side² results)")
    parser.add_argument("--every", type=int, default=10, help="job B changes one tile in this many")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], help="run one database only")
    parser.add_argument("--json", action="store_true", help="end with one line of JSON")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "URL", "JOB_A", "JOB_B", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, url, job_a, job_b, out = args.child
        print(json.dumps(child(mode, url, int(job_a), int(job_b), out)))
        return
    summary: dict[str, Any] = {}
    for dialect in ("sqlite", "postgresql"):
        if args.only in (None, dialect):
            summary[dialect] = found = run(dialect, side=args.side, every=args.every)
            print(f"\n{dialect}: 2 jobs of {found['rows_per_job']:,} results (filled in {found['fill_s']} s)")
            for mode, name in (("bare", "(a) bare read"), ("matrix", "(b) matrix"), ("files", "(c) + files")):
                one = found[mode]
                ratio = f"  {one['ratio_to_bare']}x (a)" if mode != "bare" else ""
                print(f"  {name:<14} {one['seconds']:>7.2f} s  peak RSS {one['peak_rss_mib']:>7.1f} MiB  "
                      f"{one['count']:,} {'rows' if mode == 'bare' else 'changed'}{ratio}")
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
