"""Timing real ``tileclass worker`` processes on one job, for the benchmarks (bench.worker_speed, bench.gpu_check).

A results database (SQLite in ``folder`` unless the caller's environment names another) and a broker are set up in
this process's environment, the checkpoint is registered, a launcher is started as a user would start it
(``python -m producer worker ...``), a warm-up job lets every process load (and compile) the model, and then the
timed job's batches are sent straight to the queue and the clock runs until the job is completed. Nothing here
imports torch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Row = tuple[int, int, int, str]  # z, x, y and the tile's path under its folder


@dataclass(frozen=True)
class Region:
    """A folder of tiles and the batches (lists of rows) one job sends from it."""

    root: Path
    batches: list[list[Row]]

    @property
    def tiles(self) -> int:
        return sum(map(len, self.batches))


def use_results_database(folder: Path, broker: str, checkpoint: Path) -> str:
    """Point this process (and the workers it starts) at a fresh SQLite database and ``broker`` in ``folder``,
    migrate it, and register ``checkpoint``; returns the model's hash."""
    if broker.startswith("redis"):
        import redis

        redis.Redis.from_url(broker).flushdb()
    os.environ.update({"TILECLASS_DATABASE_URL": f"sqlite:///{folder / 'results.db'}",
                       "TILECLASS_BROKER_URL": broker, "TILECLASS_DATA_DIR": str(folder / "state"),
                       "TILECLASS_MODEL_DIR": str(folder / "models"), "TILECLASS_VISIBILITY_TIMEOUT": "3600"})
    from core.db import session_scope
    from core.migrate import upgrade
    from core.models.registry import register_checkpoint
    from core.settings import get_settings

    get_settings.cache_clear()
    upgrade()
    with session_scope() as session:
        return register_checkpoint(session, checkpoint=checkpoint, settings=get_settings()).hash


def timed_job(folder: Path, model_hash: str, worker_args: Sequence[str], *, warm: Region, timed: Region,
              env: dict[str, str] | None = None, timeout: float = 900, log_name: str = "workers.log") -> dict[str, Any]:
    """Start ``tileclass worker <worker_args>``, run ``warm`` then time ``timed`` through it, stop it.

    Returns tiles/s and tiles per CPU-second of the worker processes over the timed job, its seconds, the warm-up's
    seconds and the launcher's exit code. Raises SystemExit (naming the log) if the workers die, time runs out, or
    a tile of the timed job is not classified.
    """
    log = folder / log_name
    argv = [sys.executable, "-m", "producer", "worker", *worker_args]
    with log.open("wb") as handle:
        launcher = subprocess.Popen(argv, env=os.environ | (env or {}), cwd=folder, stdout=handle,
                                    stderr=subprocess.STDOUT)
    try:
        started = time.perf_counter()
        _wait(_send_job(model_hash, warm), launcher, log, timeout=timeout)
        warm_seconds = time.perf_counter() - started
        workers = _children(launcher.pid)
        cpu = _cpu_seconds(workers)
        started = time.perf_counter()
        job = _send_job(model_hash, timed)
        _wait(job, launcher, log, timeout=timeout)
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds(workers) - cpu
    finally:
        launcher.send_signal(signal.SIGTERM)
        code = launcher.wait(timeout=120)
    classified, failed = _job_counts(job)
    if classified != timed.tiles or failed:
        raise SystemExit(f"the workers classified {classified} and failed {failed} of {timed.tiles} tiles; see {log}")
    return {"tiles_per_second": timed.tiles / seconds, "tiles_per_cpu_second": timed.tiles / max(cpu, 1e-9),
            "seconds": seconds, "warmup_seconds": warm_seconds, "launcher_exit": code}


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (the launcher's worker processes)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (all their threads)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def _send_job(model_hash: str, region: Region) -> int:
    from core import jobs
    from core.celery_app import connected_app
    from core.db import session_scope
    from core.messages import CLASSIFY_TASK, ClassifyBatch
    from core.settings import get_settings
    from core.tiles import Tile

    app = connected_app(get_settings())
    root = region.root
    with session_scope() as session:
        source = {"kind": "folder", "name": root.name, "path": str(root), "layout": "xyz:{z}/{x}/{y}.{ext}"}
        job_id = jobs.create_job(session, model_hash=model_hash, source=source).id
        # Recorded before they are sent, as the producer does: workers run only batches their job handed out.
        jobs.record_batches_enqueued(session, job_id=job_id, batches=[(seq, len(tiles))
                                                                      for seq, tiles in enumerate(region.batches)])
    for seq, tiles in enumerate(region.batches):
        app.send_task(CLASSIFY_TASK, kwargs={"batch": ClassifyBatch(job_id, seq, model_hash, root.name,
                                                                    [Tile(*row) for row in tiles]).to_message()})
    with session_scope() as session:
        jobs.finish_enqueue(session, job_id=job_id, total_tiles=region.tiles, total_batches=len(region.batches),
                            skipped=0)
    return job_id


def _wait(job_id: int, launcher: subprocess.Popen[bytes], log: Path, *, timeout: float) -> None:
    from core import jobs
    from core.db import session_scope
    from core.schema import JobState

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        with session_scope() as session:
            if jobs.get_job(session, job_id).state == JobState.COMPLETED:
                return
        if launcher.poll() is not None:
            raise SystemExit(f"the workers exited with code {launcher.returncode}; see {log}")
        time.sleep(0.05)
    raise SystemExit(f"job {job_id} did not complete within {timeout:.0f} s; see {log}")


def _job_counts(job_id: int) -> tuple[int, int]:
    from core import jobs
    from core.db import session_scope

    with session_scope() as session:
        progress = jobs.progress(session, job_id=job_id)
        return progress.classified, progress.failed
