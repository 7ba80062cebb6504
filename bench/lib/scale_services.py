"""What bench/scale.py runs against and how it counts: a private Redis, CPU time of servers and workers, a fleet of
stand-in workers that start consuming together, and a job published straight to the broker.

CPU time is read with psutil: Redis is the one ``redis-server`` process the benchmark starts; PostgreSQL is the
whole cluster of the server it connects to (the postmaster, every backend and background process, and the
backends that exited meanwhile, which the postmaster's ``children_*`` times hold). On a shared server the latter
includes other clients' work: run the benchmark on a quiet machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import psutil
from sqlalchemy import func, select

from bench.lib import REPO
from core import jobs
from core.celery_app import make_app
from core.db import session_scope
from core.messages import CLASSIFY_QUEUE, CLASSIFY_TASK, SENT_AT_HEADER, ClassifyBatch
from core.schema import BatchState, JobBatch, JobState
from core.settings import Settings
from core.tiles import Tile

STANDBY_QUEUE = "scale-standby"  # stand-in workers wait on it until told to consume classify, all at once


def free_port(start: int) -> int:
    for port in range(start, start + 500):
        with socket.socket() as probe, contextlib.suppress(OSError):
            probe.bind(("127.0.0.1", port))
            return port
    raise RuntimeError(f"no free port from {start}")


def cpu_seconds(process: psutil.Process, *, children: bool = False) -> float:
    times = process.cpu_times()
    return times.user + times.system + ((times.children_user + times.children_system) if children else 0.0)


@contextlib.contextmanager
def private_redis(binary: str = "/usr/bin/redis-server") -> Iterator[tuple[str, psutil.Process]]:
    """A redis-server on a free loopback port with the append-only file fsynced every second, as compose runs it."""
    folder = Path(tempfile.mkdtemp(prefix="tileclass-scale-redis-"))
    port = free_port(16500)
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                                "--maxmemory-policy", "noeviction"], stdout=subprocess.DEVNULL)
    try:
        import redis

        client = redis.Redis(port=port)
        for _ in range(200):
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def postgres_cluster(url: str) -> psutil.Process | None:
    """The postmaster of the server behind ``url`` when it runs on this machine (None otherwise)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            backend = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
        return psutil.Process(backend).parent()
    except (psutil.Error, OSError):
        return None
    finally:
        engine.dispose()


def cluster_cpu(postmaster: psutil.Process | None) -> float | None:
    if postmaster is None:
        return None
    total = cpu_seconds(postmaster, children=True)  # children_*: backends that already exited
    for child in postmaster.children():
        with contextlib.suppress(psutil.Error):
            total += cpu_seconds(child)
    return total


@dataclass
class CpuMeter:
    """CPU seconds of Redis, PostgreSQL, the workers and this process between ``start()`` and ``stop()``."""

    redis: psutil.Process
    postmaster: psutil.Process | None
    workers: list[psutil.Process]
    before: dict[str, float | None] = field(default_factory=dict)

    def _read(self) -> dict[str, float | None]:
        workers = 0.0
        for process in self.workers:
            with contextlib.suppress(psutil.Error):
                workers += cpu_seconds(process, children=True)
        return {"redis": cpu_seconds(self.redis), "postgresql": cluster_cpu(self.postmaster), "workers": workers,
                "bench": cpu_seconds(psutil.Process())}

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> dict[str, float | None]:
        after = self._read()
        return {key: None if after[key] is None or self.before[key] is None else round(
            float(after[key]) - float(self.before[key]), 3) for key in after}  # type: ignore[arg-type]


class StandinFleet:
    """``count`` stand-in Celery workers (bench/lib/scale_standin.py), one process and one connection each."""

    def __init__(self, count: int, env: dict[str, str], folder: Path) -> None:
        self.count, self.env, self.folder = count, env, folder
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> StandinFleet:
        for index in range(self.count):
            log = (self.folder / f"standin{index}.log").open("ab")
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "bench.lib.scale_standin", "worker", "--pool", "solo", "-Q",
                 STANDBY_QUEUE, "--hostname", f"standin{index}@%h", "--loglevel", "warning", "--without-mingle",
                 "--without-gossip"], env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
        return self

    def wait_ready(self, settings: Settings, timeout: float = 300) -> None:
        app = make_app(settings)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"a stand-in worker exited; see {self.folder}/standin*.log")
            if len(app.control.ping(timeout=1.0)) >= self.count:
                return
        raise RuntimeError(f"{self.count} stand-in workers were not all up after {timeout:.0f} s")

    def go(self, settings: Settings) -> float:
        """Every worker starts consuming the classify queue now; returns the time (time.time()) it was said."""
        said = time.time()
        make_app(settings).control.add_consumer(CLASSIFY_QUEUE, reply=False)
        return said

    def psutil_processes(self) -> list[psutil.Process]:
        return [psutil.Process(p.pid) for p in self.processes]

    def __exit__(self, *_: object) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def publish_job(settings: Settings, *, model_hash: str, source: dict[str, object], tiles: list[Tile],
                batch_size: int) -> int:
    """A job of ``tiles`` in batches of ``batch_size``, recorded and sent as the producer does (one connection)."""
    with session_scope(settings.database_url) as session:
        job_id = jobs.create_job(session, model_hash=model_hash, source=source).id
    batches = [tiles[i : i + batch_size] for i in range(0, len(tiles), batch_size)]
    with session_scope(settings.database_url) as session:
        jobs.record_batches_enqueued(session, job_id=job_id, batches=[(seq, len(b)) for seq, b in enumerate(batches)])
    app = make_app(settings)
    with app.producer_or_acquire() as producer:
        for seq, rows in enumerate(batches):
            message = ClassifyBatch(job_id, seq, model_hash, str(source["name"]), rows).to_message()
            app.send_task(CLASSIFY_TASK, kwargs={"batch": message}, queue=CLASSIFY_QUEUE, producer=producer,
                          headers={SENT_AT_HEADER: time.time()}, argsrepr="()", kwargsrepr="<batch>")
    with session_scope(settings.database_url) as session:
        jobs.finish_enqueue(session, job_id=job_id, total_tiles=len(tiles), total_batches=len(batches), skipped=0)
    return job_id


def wait_done(settings: Settings, job_id: int, *, timeout: float, processes: list[subprocess.Popen[bytes]]) -> float:
    """Wait for the job to complete; returns when its last batch finished (time.time())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(settings.database_url, read_only=True) as session:
            if jobs.get_job(session, job_id).state == JobState.COMPLETED:
                last = session.scalar(select(func.max(JobBatch.finished_at)).where(
                    JobBatch.job_id == job_id, JobBatch.state == BatchState.DONE))
                assert last is not None
                # SQLite gives the UTC time back without its zone
                return float((last if last.tzinfo else last.replace(tzinfo=UTC)).timestamp())
        if any(p.poll() is not None for p in processes):
            raise RuntimeError(f"a worker exited while job {job_id} ran")
        time.sleep(0.2)
    raise RuntimeError(f"job {job_id} did not complete within {timeout:.0f} s")


def worker_env(settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILECLASS_")}
    # The repository, for bench.lib.scale_standin (the real workers need only the installed packages).
    return env | settings | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                             "MKL_NUM_THREADS": "1"}
