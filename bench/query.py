"""Benchmark: query latency on 1,000,000 results, SQLite and PostgreSQL, against the bare primary-key lookup.

For each database (a temporary SQLite file; a fresh temporary PostgreSQL database on 127.0.0.1:5432, dropped
afterwards) it creates the schema with the migrations, registers two models and fills ``tile_results`` with
1,000,000 rows by bulk insert (``executemany`` on SQLite, ``COPY`` on PostgreSQL): both models classified the same
1000 x 500 tiles of zoom 17, so every point lookup has two candidates to choose the latest model from. Then, in one
read-only session, it measures the median and p99 of:

(a) the bare primary-key lookup ``SELECT <the same columns> FROM tile_results WHERE id = ?`` through the same
    session — the baseline (the raw driver's time for it is printed beside it);
(b) a point lookup through ``core.queries.tile_result`` (latest model, probabilities decoded, a dataclass back);
(c) a 10,000-tile bbox (100 x 100 tiles) through ``core.queries.query_bbox`` (the region's model settled first).

and prints (b)/(a) and (c)/(a), plus the query plans used.

Usage: ``.venv/bin/python -m bench.query [--points 2000] [--boxes 30] [--only sqlite|postgresql]``
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from datetime import UTC, datetime
from typing import Any

import mercantile
from sqlalchemy import bindparam, select, text

from bench.lib.bulk_results import CLASSES, COLUMNS, fill, result_rows, summary, temporary_database, timed
from core.db import dispose_engines, session_scope
from core.jobs import create_job
from core.migrate import upgrade
from core.models.registry import register_model
from core.queries import BBox, query_bbox, results_statement, select_results, tile_result, tile_statement
from core.schema import Model, TileResult
from core.tiles import Tile

ZOOM, X0, Y0, WIDTH, HEIGHT = 17, 62000, 50000, 1000, 500
BOX_SIDE = 100


def register(url: str) -> list[tuple[str, int]]:
    models = []
    with session_scope(url) as session:
        for seed, created in (("older", datetime(2026, 1, 1, tzinfo=UTC)), ("newer", datetime(2026, 2, 1, tzinfo=UTC))):
            digest = hashlib.sha256(seed.encode()).hexdigest()
            register_model(session, model_hash=digest, arch="resnet50", class_names=CLASSES, image_size=64,
                           path=f"/models/{seed}.pt")
            session.get(Model, digest).created_at = created
            models.append((digest, create_job(session, model_hash=digest).id))
    return models


def plan(session: Any, stmt: Any) -> str:
    dialect = session.get_bind().dialect
    sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if dialect.name == "sqlite" else "EXPLAIN "
    return "; ".join(str(row[-1]).strip() for row in session.connection().exec_driver_sql(prefix + sql))


def measure(url: str, *, points: int, boxes: int) -> dict[str, Any]:
    rng = random.Random(7)
    tiles = [Tile(ZOOM, X0 + rng.randrange(WIDTH), Y0 + rng.randrange(HEIGHT)) for _ in range(points)]
    ids = [rng.randrange(1, 2 * WIDTH * HEIGHT + 1) for _ in range(points)]
    corners = [(X0 + rng.randrange(WIDTH - BOX_SIDE), Y0 + rng.randrange(HEIGHT - BOX_SIDE)) for _ in range(boxes)]
    bboxes = []
    for x, y in corners:  # a box just inside the edges of 100 x 100 tiles
        west, _, _, north = mercantile.bounds(x, y, ZOOM)
        _, south, east, _ = mercantile.bounds(x + BOX_SIDE - 1, y + BOX_SIDE - 1, ZOOM)
        bboxes.append(BBox(west + 1e-7, south + 1e-7, east - 1e-7, north - 1e-7))
    columns = [getattr(TileResult, name) for name in COLUMNS]
    by_id = select(*columns).where(TileResult.id == bindparam("id"))
    newest = hashlib.sha256(b"newer").hexdigest()
    results: dict[str, Any] = {}
    with session_scope(url, read_only=True) as session:
        pk = iter(ids * 3)
        point = iter(tiles * 3)
        box = iter(bboxes * 3)
        raw = session.connection().connection.dbapi_connection
        assert raw is not None
        marker = "?" if url.startswith("sqlite") else "%s"
        raw_sql = f"SELECT {', '.join(COLUMNS)} FROM tile_results WHERE id = {marker}"
        raw_cursor = raw.cursor()

        def bare() -> object:
            return session.execute(by_id, {"id": next(pk)}).first()

        def bare_raw() -> object:
            raw_cursor.execute(raw_sql, (next(pk),))
            return raw_cursor.fetchone()

        def lookup() -> object:
            found = tile_result(session, tile=next(point))
            assert found is not None and found.model_hash == newest
            return found

        def region() -> object:
            found = query_bbox(session, bbox=next(box), zoom=ZOOM)
            assert len(found) == BOX_SIDE * BOX_SIDE, len(found)
            return found

        for call, repeat in ((bare, 200), (bare_raw, 200), (lookup, 200), (region, 3)):  # warm caches and plans
            timed(call, repeat)
        pk, point, box = iter(ids * 3), iter(tiles * 3), iter(bboxes * 3)
        results["bare"] = summary(timed(bare, points))
        results["bare_raw"] = summary(timed(bare_raw, points))
        results["point"] = summary(timed(lookup, points))
        results["bbox"] = summary(timed(region, boxes))
        results["plans"] = {
            "point": plan(session, tile_statement(tiles[0])),
            "bbox": plan(session, results_statement(select_results(session, bbox=bboxes[0], zoom=ZOOM))),
        }
    return results


def run(dialect: str, *, points: int, boxes: int) -> None:
    with temporary_database(dialect) as url:
        upgrade(url)
        models = register(url)
        started = time.perf_counter()
        fill(url, result_rows(models, zoom=ZOOM, x0=X0, y0=Y0, width=WIDTH, height=HEIGHT))
        with session_scope(url) as session:
            count = session.scalar(select(text("count(*)")).select_from(TileResult))
        print(f"\n{dialect}: filled {count:,} rows in {time.perf_counter() - started:.1f} s")
        found = measure(url, points=points, boxes=boxes)
        dispose_engines()
    base = found["bare"][0]
    print(f"  {'query':<44} {'median':>10} {'p99':>10} {'median / (a)':>13}")
    labels = {"bare": "(a) bare PK lookup, same session", "bare_raw": "    bare PK lookup, raw driver cursor",
              "point": "(b) point lookup, core.queries.tile_result", "bbox": "(c) 10,000-tile bbox, query_bbox"}
    for key, label in labels.items():
        median, p99 = found[key]
        print(f"  {label:<44} {median * 1e3:>8.3f}ms {p99 * 1e3:>8.3f}ms {median / base:>12.1f}x")
    for name, text_plan in found["plans"].items():
        print(f"  plan ({name}): {text_plan}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000, help="point and PK lookups measured per database")
    parser.add_argument("--boxes", type=int, default=30, help="bbox queries measured per database")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], help="run one database only")
    args = parser.parse_args()
    print(f"tile_results: 2 models x {WIDTH} x {HEIGHT} tiles at zoom {ZOOM} = {2 * WIDTH * HEIGHT:,} rows; "
          f"{args.points} point lookups, {args.boxes} bbox queries of {BOX_SIDE} x {BOX_SIDE} tiles")
    for dialect in ("sqlite", "postgresql"):
        if args.only in (None, dialect):
            run(dialect, points=args.points, boxes=args.boxes)


if __name__ == "__main__":
    main()
