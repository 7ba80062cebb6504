"""Benchmark: the HTTP server on 1,000,000 results (SQLite and PostgreSQL): overlay tiles in process, and
``/api/tiles`` under a bounded loopback load, each against a baseline from the same run.

For each database (a temporary SQLite file; a fresh temporary PostgreSQL database on 127.0.0.1:5432, dropped
afterwards) it registers one model and fills ``tile_results`` with its results for a 1000 x 1000 block of zoom-17
tiles (bulk insert), then:

1. **Overlay tiles, in process**, at the results' zoom and 2, 4 and 6 zooms out (and 8 and 10, the far-out view, for
   information), for random tiles inside the block. Each tile's three parts are timed apart: the index range query
   (``core.queries.overlay.overlay_rows`` through a read-only session), the aggregation (``overlay_grid``) and the
   PNG encoding (``api.overlay_png``); beside them the bare index range query for the same tile (``SELECT x, y,
   label`` with the same range, through the raw driver cursor, every row fetched). p50 and p99 of each, and the
   ratio aggregation / bare query (goal: at most 3). Far out the query groups in the database, so there its bare
   counterpart is the plain range query over every row under the tile.
2. **``/api/tiles`` requests per second**: a real ``tileclass serve`` on a free loopback port (``--workers 1``, then
   2), and 8 client threads (one keep-alive httpx client each) asking for random tiles of the block for
   ``--seconds``; against the CLI's in-process lookup (``core.queries.report_tile`` in one session, one thread) over
   the same tiles. Server and clients share this machine's cores, so the ratio is a floor for a server with cores
   of its own.

Usage: ``.venv/bin/python -m bench.serve [--side 1000] [--samples 200] [--seconds 10] [--only sqlite|postgresql]
[--json]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import httpx

from api.overlay_png import overlay_png
from bench.lib import REPO
from bench.lib.bulk_results import CLASSES, fill, result_rows, summary, temporary_database
from core.db import dispose_engines, session_scope
from core.migrate import upgrade
from core.models.lookups import find_model
from core.models.registry import register_model
from core.queries import report_tile
from core.queries.overlay import OverlayRequest, overlay_grid, overlay_rows
from core.tiles import Tile

ZOOM, X0, Y0 = 17, 62464, 50176  # the block's corner is a corner of a zoom-7 tile, so zoomed-out tiles are full
ZOOMS_OUT = (0, 2, 4, 6, 8, 10)
GOAL_ZOOMS_OUT = (0, 2, 4, 6)
CLIENTS = 8
SERVER_WORKERS = (1, 2)


def fill_database(url: str, side: int) -> str:
    upgrade(url)
    digest = hashlib.sha256(b"bench-serve").hexdigest()
    with session_scope(url) as session:
        register_model(session, model_hash=digest, arch="resnet50", class_names=CLASSES, image_size=64,
                       path="/models/bench.pt")
    fill(url, result_rows([(digest, None)], zoom=ZOOM, x0=X0, y0=Y0, width=side, height=side))  # type: ignore[list-item]
    return digest


def overlay_tiles(rng: random.Random, side: int, zooms_out: int, count: int) -> list[Tile]:
    """Random tiles ``zooms_out`` above the results, each over a part of the block."""
    shift = zooms_out
    low_x, low_y = X0 >> shift, Y0 >> shift
    high_x, high_y = (X0 + side - 1) >> shift, (Y0 + side - 1) >> shift
    return [Tile(ZOOM - shift, rng.randint(low_x, high_x), rng.randint(low_y, high_y)) for _ in range(count)]


def measure_overlay(url: str, digest: str, side: int, samples: int) -> dict[str, Any]:
    rng = random.Random(11)
    found: dict[str, Any] = {}
    with session_scope(url, read_only=True) as session:
        model = find_model(session, ref=digest)
        raw = session.connection().connection.dbapi_connection
        assert raw is not None
        marker = "?" if url.startswith("sqlite") else "%s"
        bare_sql = (f"SELECT x, y, label FROM tile_results WHERE model_hash = {marker} AND z = {marker} "
                    f"AND x BETWEEN {marker} AND {marker} AND y BETWEEN {marker} AND {marker}")
        cursor = raw.cursor()
        for zooms_out in ZOOMS_OUT:
            count = samples if zooms_out < 8 else max(samples // 20, 3)
            requests = [OverlayRequest(model, ZOOM, tile) for tile in overlay_tiles(rng, side, zooms_out, count)]
            parts: dict[str, list[float]] = {"bare": [], "query": [], "aggregation": [], "png": []}
            rows_read = 0
            for round_ in range(2):  # the first round warms caches and plans, the second is measured
                for wanted in requests:
                    tiles = wanted.results_range()
                    started = time.perf_counter()
                    cursor.execute(bare_sql, (digest, ZOOM, tiles.min_x, tiles.max_x, tiles.min_y, tiles.max_y))
                    bare_rows = cursor.fetchall()
                    bare = time.perf_counter() - started
                    rows = overlay_rows(session, request=wanted)
                    queried = time.perf_counter() - started - bare
                    grid = overlay_grid(rows, request=wanted)
                    aggregated = time.perf_counter() - started - bare - queried
                    overlay_png(grid)
                    encoded = time.perf_counter() - started - bare - queried - aggregated
                    if round_:
                        for name, value in zip(parts, (bare, queried, aggregated, encoded), strict=True):
                            parts[name].append(value)
                        rows_read += len(bare_rows)
            found[str(zooms_out)] = {name: summary(values) for name, values in parts.items()} | {
                "tiles": len(requests), "rows_per_tile": rows_read / len(requests)}
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def lookup_tiles(side: int, count: int) -> list[Tile]:
    rng = random.Random(5)
    return [Tile(ZOOM, X0 + rng.randrange(side), Y0 + rng.randrange(side)) for _ in range(count)]


def measure_in_process(url: str, tiles: list[Tile], seconds: float) -> float:
    """The CLI's lookup (``query tile``'s ``report_tile``) in one session: lookups per second."""
    done = 0
    with session_scope(url, read_only=True) as session:
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            report = report_tile(session, tile=tiles[done % len(tiles)])
            assert report.answer is not None
            report.as_dict(top_k=3)
            done += 1
        return done / (time.perf_counter() - started)


def measure_server(url: str, tiles: list[Tile], seconds: float, workers: int) -> tuple[float, int]:
    """Requests per second that ``CLIENTS`` keep-alive clients get from a real ``tileclass serve --workers``; and
    errors."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILECLASS_")} | {"TILECLASS_DATABASE_URL": url}
    server = subprocess.Popen([sys.executable, "-m", "producer", "serve", "--port", str(port), "--log-level",
                               "warning", "--workers", str(workers)], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, server)
        counts, errors = [0] * CLIENTS, [0] * CLIENTS
        stop = threading.Event()

        def client(index: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as session:
                position = index
                while not stop.is_set():
                    tile = tiles[position % len(tiles)]
                    answer = session.get(f"/api/tiles/{tile.z}/{tile.x}/{tile.y}")
                    if answer.status_code == 200:
                        counts[index] += 1
                    else:
                        errors[index] += 1
                    position += CLIENTS

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # warm-up: connections open, the server's engine pooled
        before, started = sum(counts), time.perf_counter()
        time.sleep(seconds)
        measured, elapsed = sum(counts) - before, time.perf_counter() - started
        stop.set()
        for thread in threads:
            thread.join()
        return measured / elapsed, sum(errors)
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_until_up(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
        if server.poll() is not None:
            raise SystemExit(f"tileclass serve exited: {server.stderr.read().decode() if server.stderr else ''}")
    raise SystemExit("tileclass serve did not start within 60 s")


def run(dialect: str, args: argparse.Namespace) -> dict[str, Any]:
    with temporary_database(dialect) as url:
        started = time.perf_counter()
        digest = fill_database(url, args.side)
        filled = time.perf_counter() - started
        overlay = measure_overlay(url, digest, args.side, args.samples)
        tiles = lookup_tiles(args.side, 5000)
        in_process = measure_in_process(url, tiles, args.seconds)
        dispose_engines()
        served = {workers: measure_server(url, tiles, args.seconds, workers) for workers in SERVER_WORKERS}
    return {"rows": args.side * args.side, "fill_seconds": round(filled, 1), "overlay": overlay,
            "in_process_lookups_per_s": round(in_process, 1),
            "api": {str(workers): {"requests_per_s": round(rate, 1), "errors": errors,
                                   "ratio_to_in_process": round(rate / in_process, 2)}
                    for workers, (rate, errors) in served.items()}}


def report(dialect: str, found: dict[str, Any]) -> None:
    print(f"\n{dialect}: {found['rows']:,} results (filled in {found['fill_seconds']} s)")
    print(f"  {'zooms out':>9} {'rows/tile':>9}  {'bare query':>19}  {'index range query':>19}  "
          f"{'aggregation':>19}  {'PNG':>19}  {'aggr/bare':>9}")
    print(f"  {'':>9} {'':>9}  {'p50 / p99 ms':>19}  {'p50 / p99 ms':>19}  {'p50 / p99 ms':>19}  "
          f"{'p50 / p99 ms':>19}  {'p50':>9}")
    for zooms_out, parts in found["overlay"].items():
        cells = [f"{parts[name][0] * 1e3:8.3f} / {parts[name][1] * 1e3:8.3f}" for name in
                 ("bare", "query", "aggregation", "png")]
        ratio = parts["aggregation"][0] / parts["bare"][0]
        note = "" if int(zooms_out) in GOAL_ZOOMS_OUT else "  (far out: grouped in the database)"
        print(f"  {zooms_out:>9} {parts['rows_per_tile']:>9.0f}  " + "  ".join(cells) + f"  {ratio:>8.2f}x{note}")
    print(f"  in-process lookup (one thread): {found['in_process_lookups_per_s']:,.0f}/s")
    for workers, api in found["api"].items():
        print(f"  /api/tiles, {CLIENTS} loopback clients, --workers {workers}: {api['requests_per_s']:,.0f} "
              f"requests/s ({api['errors']} errors), ratio to in-process {api['ratio_to_in_process']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=1000, help="the block is SIDE x SIDE tiles of zoom 17")
    parser.add_argument("--samples", type=int, default=200, help="overlay tiles timed per zoom")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each requests-per-second run")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], help="run one database only")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of every number")
    args = parser.parse_args()
    print(f"cpu={platform.processor() or platform.machine()} cores={os.cpu_count()} python="
          f"{sys.version.split()[0]}; {args.side} x {args.side} results at zoom {ZOOM}, {args.samples} overlay "
          f"tiles per zoom, {args.seconds:g} s per request-rate run")
    results = {}
    for dialect in ("sqlite", "postgresql"):
        if args.only in (None, dialect):
            results[dialect] = run(dialect, args)
            report(dialect, results[dialect])
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
