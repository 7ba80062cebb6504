"""What the database benchmarks (bench/query.py, bench/serve.py) share: a temporary SQLite file or PostgreSQL
database (created on 127.0.0.1:5432 and dropped afterwards), result rows written in bulk (``executemany`` on
SQLite, ``COPY`` on PostgreSQL), and the timing helpers."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from core.db import dispose_engines, get_engine

POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CLASSES = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
           "Residential", "River", "SeaLake"]
COLUMNS = ("model_hash", "z", "x", "y", "root_name", "path", "label", "confidence", "probabilities", "job_id",
           "classified_at")


def result_rows(models: Iterable[tuple[str, int]], *, zoom: int, x0: int, y0: int, width: int,
                height: int) -> Iterator[tuple[Any, ...]]:
    """Every (model, tile) row of a ``width`` x ``height`` block; realistic 10-class probabilities, labels in a
    fixed pattern."""
    stamp = "2026-01-01 00:00:00.000000"
    documents = []
    for label in CLASSES:
        probabilities = {name: (0.82 if name == label else 0.02) for name in CLASSES}
        documents.append((label, json.dumps(probabilities)))
    for digest, job in models:
        for x in range(x0, x0 + width):
            for y in range(y0, y0 + height):
                label, document = documents[(x * 7 + y * 3) % len(documents)]
                yield (digest, zoom, x, y, "ortho", f"{zoom}/{x}/{y}.png", label, 0.82, document, job, stamp)


def fill(url: str, rows: Iterable[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (in ``COLUMNS`` order) into ``tile_results`` in bulk, then update the planner's statistics."""
    connection = get_engine(url).raw_connection()
    try:
        cursor = connection.cursor()
        if url.startswith("sqlite"):
            cursor.execute("BEGIN")
            cursor.executemany(
                f"INSERT INTO tile_results ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", rows)
            cursor.execute("COMMIT")
            cursor.execute("ANALYZE")
            return
        with cursor.copy(f"COPY tile_results ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        connection.commit()
    finally:
        connection.close()
    maintenance = create_engine(url, isolation_level="AUTOCOMMIT")  # VACUUM refuses to run in a transaction
    with maintenance.connect() as conn:
        conn.exec_driver_sql("VACUUM ANALYZE tile_results")
    maintenance.dispose()


@contextmanager
def temporary_database(dialect: str) -> Iterator[str]:
    """The URL of a new, empty database of ``dialect`` (sqlite or postgresql), removed afterwards."""
    if dialect == "sqlite":
        with tempfile.TemporaryDirectory(prefix="tileclass-bench-") as folder:
            yield f"sqlite:///{folder}/results.db"
        return
    name = f"tileclass_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def timed(call: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def summary(samples: list[float]) -> tuple[float, float]:
    """Median and p99 of ``samples``."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
