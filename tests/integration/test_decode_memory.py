"""Hostile tiles that are small files but huge images: a real worker's peak memory stays bounded.

Each 16-bit PNG here is about 140 KB on disk and declares 8000 x 8000 pixels (or 4000 x 4000, just under the default
cap). Before the fix the first kind alone took about 2.1 GB of RSS per decode (a float64 copy, then a float copy
for the resize), and four decode threads could ask for four of them at once.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from core.db import session_scope
from core.schema import FailedTile, JobState, TileResult
from core.tiles import Tile
from tests.integration.test_worker_processes import deploy, job_state
from tests.worker.support import running, start_celery, tile_tree, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# The most the batch may add to the worker's peak RSS (VmHWM) over its RSS when ready. It includes loading the model
# on the first batch: the same batch without the hostile tiles adds about 270 MiB, with them about 470 (Intel Xeon,
# 2026-12-03); before the fix one 8000 x 8000 tile alone added about 2,100.
BOUND_MIB = 600


def sixteen_bit_png(side: int) -> bytes:
    values = np.full((side, side), 40000, dtype=np.uint16)
    values[::97, :] = 1000
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def test_a_worker_decoding_huge_sixteen_bit_tiles_stays_within_its_memory_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    world = deploy(tmp_path, monkeypatch, database_url=sqlite_url)
    good = tile_tree(world.root, 4)
    hostile: dict[Tile, int] = {}
    for y, side in enumerate([8000] * 4 + [4000] * 4):
        relative = f"16/7/{y}.png"
        (world.root / relative).parent.mkdir(parents=True, exist_ok=True)
        (world.root / relative).write_bytes(sixteen_bit_png(side))
        hostile[Tile(16, 7, y, relative)] = side
    assert max(path.stat().st_size for path in (world.root / "16" / "7").iterdir()) < 200_000
    log = tmp_path / "worker.log"
    env = world.env | {"TILECLASS_WORKER_DECODE_THREADS": "4"}
    worker = start_celery(env, cwd=tmp_path, name="memory", log=log)
    with running(worker):
        wait_for(lambda: "ready." in log.read_text(errors="replace"), timeout=120, what="the worker to be ready",
                 logs=(log,), processes=(worker,))
        job = world.send_job([[*good[:2], *hostile, *good[2:]]])
        ready_rss = memory_kib(worker.pid)["VmRSS"]
        wait_for(lambda: job_state(job) == JobState.COMPLETED, timeout=180, what="the job to complete",
                 logs=(log,), processes=(worker,))
        peak = memory_kib(worker.pid)["VmHWM"]
    grown_mib = (peak - ready_rss) / 1024
    assert grown_mib < BOUND_MIB, f"peak RSS grew by {grown_mib:.0f} MiB over the ready worker's"
    with session_scope() as session:
        failed = {f.path: f.reason for f in session.scalars(select(FailedTile).where(FailedTile.job_id == job))}
        classified = {r.path for r in session.scalars(select(TileResult).where(TileResult.job_id == job))}
    too_big = {tile.path for tile, side in hostile.items() if side == 8000}
    assert failed == dict.fromkeys(too_big, "decompression bomb: 64000000 pixels > 16777216")
    assert classified == {tile.path for tile in good} | {tile.path for tile, side in hostile.items() if side == 4000}
