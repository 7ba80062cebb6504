"""The baseline of bench/scale.py: the stand-in's rows upserted bare from one connection, batch by batch, with
nothing of tileclass around them — what the database alone does with the same rows.

- PostgreSQL, ``executemany``: psycopg's ``executemany`` (pipelined) of ``INSERT ... ON CONFLICT (model, z, x, y)
  DO UPDATE``, one transaction per batch;
- PostgreSQL, ``copy``: ``COPY`` into a temporary table, then one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``
  per batch (the usual fastest bulk upsert);
- SQLite, ``executemany``: sqlite3's ``executemany`` of the same upsert, one transaction per batch.

Each is timed over all batches; the result is tiles/s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from core.db import get_engine
from core.tiles import Tile

COLUMNS = ("model_hash", "job_id", "z", "x", "y", "root_name", "path", "label", "confidence", "probabilities",
           "classified_at")
UPSERT_TAIL = ("ON CONFLICT (model_hash, z, x, y) WHERE z IS NOT NULL DO UPDATE SET label = excluded.label, "
               "confidence = excluded.confidence, probabilities = excluded.probabilities, "
               "classified_at = excluded.classified_at, job_id = excluded.job_id")


def rows_of(tiles: Sequence[Tile], model: str) -> list[tuple[Any, ...]]:
    from bench.lib.scale_standin import PROBABILITIES

    document, stamp = json.dumps(PROBABILITIES), "2026-01-01 00:00:00+00"
    return [(model, None, t.z, t.x, t.y, "bench", t.path, "Forest", 0.82, document, stamp) for t in tiles]


def bare_upserts(url: str, tiles: Sequence[Tile], batch: int, model: str) -> dict[str, float]:
    """tiles/s of each bare method on ``url`` (each method writes a model of its own, so all of them insert)."""
    postgres = not url.startswith("sqlite")
    methods = {"executemany": _executemany} | ({"copy": _copy} if postgres else {})
    rates = {}
    for index, (name, method) in enumerate(methods.items()):
        rows = rows_of(tiles, model[:-1] + str(index))
        _register(url, model[:-1] + str(index))
        connection = get_engine(url).raw_connection()
        try:
            started = time.perf_counter()
            for start in range(0, len(rows), batch):
                method(connection, rows[start : start + batch], postgres)
            rates[name] = round(len(rows) / (time.perf_counter() - started))
        finally:
            connection.close()
    return rates


def _register(url: str, model: str) -> None:
    from core.db import session_scope
    from core.models.registry import register_model

    with session_scope(url) as session:
        register_model(session, model_hash=model, arch="stand-in", class_names=["Forest"], image_size=64,
                       path="/nonexistent/stand-in.pt")


def _executemany(connection: Any, rows: list[tuple[Any, ...]], postgres: bool) -> None:
    marks = ", ".join(["%s" if postgres else "?"] * len(COLUMNS))
    cursor = connection.cursor()
    if not postgres:
        cursor.execute("BEGIN IMMEDIATE")
    cursor.executemany(f"INSERT INTO tile_results ({', '.join(COLUMNS)}) VALUES ({marks}) {UPSERT_TAIL}", rows)
    if postgres:
        connection.commit()
    else:
        cursor.execute("COMMIT")


def _copy(connection: Any, rows: list[tuple[Any, ...]], _postgres: bool) -> None:
    cursor = connection.cursor()
    cursor.execute("CREATE TEMP TABLE IF NOT EXISTS staging (LIKE tile_results INCLUDING DEFAULTS) "
                   "ON COMMIT DELETE ROWS")
    with cursor.copy(f"COPY staging ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    names = ", ".join(COLUMNS)
    cursor.execute(f"INSERT INTO tile_results ({names}) SELECT {names} FROM staging {UPSERT_TAIL}")
    connection.commit()
