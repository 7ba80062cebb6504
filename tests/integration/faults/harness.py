"""The fault suite's harness: a private Redis it may kill, real `tileclass worker` processes, a real tile region.

- ``PrivateRedis``: a ``redis-server`` on its own loopback port (16379 and up) with its append-only file in a
  temporary folder, so that a test can SIGKILL it, restart it from its AOF, or restart it empty.
- ``WorkerPool``: N ``tileclass worker --processes 1`` launchers, each running one solo-pool Celery worker on the
  CPU. ``supervise()`` restarts a launcher whose worker died, as a service manager (compose ``restart:``) does.
  Through ``hooks/sitecustomize.py`` the workers mark the batch they are running (``busy()``), read tiles slowly
  enough to be hit mid-batch, and die on a "poison" tile.
- ``make_region``: a z/x/y tree of real EuroSAT JPEGs; ``reference_labels``: what the model says about each tile
  when nothing goes wrong, computed in this process with ``model.predict.Classifier``.
- ``check_invariants``: after a scenario the job is complete, every tile has exactly one result for the model, no
  tile is both failed and classified, labels equal the reference, and the broker holds nothing.

Every wait has a deadline (``wait_for``) and reports the workers' logs when it runs out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import redis
from sqlalchemy import and_, func, select

from core import jobs
from core.db import session_scope
from core.schema import FailedTile, JobState, TileResult
from core.tiles import Tile
from tests.conftest import EUROSAT, REPO_ROOT, SUBSET_CLASSES, fresh_postgres_database

HOOKS = Path(__file__).resolve().parent / "hooks"
POISON = b"TILECLASS-TEST-POISON"  # hooks/sitecustomize.py kills the worker that reads a tile holding this
CRASH = b"TILECLASS-TEST-CRASH"  # ... and makes the batch of a tile holding this raise
VISIBILITY = 10  # seconds: the smallest visibility timeout the settings accept


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str, pool: WorkerPool | None = None,
             interval: float = 0.1) -> None:
    """Poll ``condition`` (restarting dead workers meanwhile) until it holds; fail with the logs after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pool is not None:
            pool.supervise()
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n" + (pool.tails() if pool else ""))


def free_port(start: int = 16379) -> int:
    for port in range(start, start + 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}..{start + 199}")


# A database that outlives one test (worker processes keep its URL), dropped afterwards.
private_database = fresh_postgres_database


def worker_env(settings: dict[str, str], *, state: Path, tile_delay: float = 0.0) -> dict[str, str]:
    """The workers' environment: this one's without outside TILECLASS_* settings, the deployment's, the hooks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILECLASS_") or k.startswith("TILECLASS_TEST_")}
    return env | settings | {
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": f"{HOOKS}{os.pathsep}{REPO_ROOT}",
        "TILECLASS_TEST_FAULTS": str(state), "TILECLASS_TEST_TILE_DELAY": str(tile_delay),
    }


class PrivateRedis:
    """A redis-server of this test module only, which the tests may kill and restart."""

    def __init__(self, folder: Path, *, password: str | None = None) -> None:
        self.folder, self.password = folder, password
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def start(self) -> None:
        argv = ["/usr/bin/redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction", "--logfile",
                str(self.folder / "redis.log")]
        if self.password:
            argv += ["--requirepass", self.password]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if self.client().ping():
                    return
            time.sleep(0.05)
        raise AssertionError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to clients; what the AOF holds is what comes back."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self, *, empty: bool = False) -> None:
        self.kill()
        if empty:  # a new machine, a lost volume or a FLUSHALL: everything queued is forgotten
            for entry in self.folder.iterdir():
                if entry.name != "redis.log":
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def queued(self) -> tuple[int, int]:
        """(messages waiting in the classify queue, messages delivered and not acknowledged)."""
        client = self.client()
        try:
            return int(client.llen("classify")), int(client.hlen("unacked"))
        finally:
            client.close()


@dataclass
class Slot:
    """One `tileclass worker` launcher of the pool and the log of its current incarnation."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    starts: int = 0


class WorkerPool:
    """``count`` real worker launchers sharing one environment; see the module docstring."""

    def __init__(self, env: dict[str, str], *, folder: Path, count: int) -> None:
        self.env, self.folder = env, folder
        self.state = Path(env["TILECLASS_TEST_FAULTS"])
        self.slots = [Slot(i) for i in range(count)]
        self.restarts = 0

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)
        self.wait_ready()

    def _spawn(self, slot: Slot) -> None:
        slot.starts += 1
        slot.log = self.folder / f"worker{slot.index}-{slot.starts}.log"
        argv = [sys.executable, "-m", "producer", "worker", "--device", "cpu", "--processes", "1",
                "--threads-per-process", "1", "--no-compile", "--precision", "fp32", "--loglevel", "info"]
        with slot.log.open("ab") as handle:
            slot.process = subprocess.Popen(argv, env=self.env, cwd=self.folder, stdout=handle,
                                            stderr=subprocess.STDOUT)

    def supervise(self) -> None:
        """Restart every launcher that exited (its worker died): what a service manager does."""
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is not None:
                self.restarts += 1
                self._spawn(slot)

    def children(self) -> dict[int, int]:
        """Celery worker pid -> slot index, for the launchers that are running."""
        found: dict[int, int] = {}
        for slot in self.slots:
            if slot.process is None or slot.process.poll() is not None:
                continue
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{slot.process.pid}/task/{slot.process.pid}/children").read_text()
                found |= {int(pid): slot.index for pid in text.split()}
        return found

    def ready(self) -> bool:
        live = self.children()
        return len(live) == len(self.slots) and all((self.state / "ready" / str(pid)).exists() for pid in live)

    def wait_ready(self, timeout: float = 150) -> None:
        wait_for(self.ready, timeout=timeout, what="every worker to be ready", pool=self)

    def busy(self, job_id: int | None = None) -> dict[int, tuple[str, int, int]]:
        """Live worker pid -> (task id, job, seq) of the classify batch it is running now."""
        live = self.children()
        found = {}
        for marker in (self.state / "busy").iterdir():
            pid = int(marker.name)
            with contextlib.suppress(OSError, ValueError):
                task, job, seq = marker.read_text().split()
                if pid in live and (job_id is None or int(job) == job_id):
                    found[pid] = (task, int(job), int(seq))
        return found

    def runs(self, job_id: int) -> list[tuple[str, int, int]]:
        """(event, pid, seq) for every batch start/end of ``job_id`` the workers logged, in order."""
        log = self.state / "runs.log"
        events = []
        for line in log.read_text().splitlines() if log.exists() else []:
            parts = line.split()
            if parts[0] in ("start", "end") and parts[3] == str(job_id):
                events.append((parts[0], int(parts[1]), int(parts[4])))
        return events

    def poisoned(self) -> int:
        log = self.state / "runs.log"
        return sum(line.startswith("poison ") for line in log.read_text().splitlines()) if log.exists() else 0

    def launcher_of(self, child: int) -> subprocess.Popen[bytes]:
        process = self.slots[self.children()[child]].process
        assert process is not None
        return process

    def stop(self) -> None:
        """Warm shutdown of every launcher; whatever does not stop in time is killed (with its worker)."""
        live = [slot.process for slot in self.slots if slot.process is not None and slot.process.poll() is None]
        stopped = list(self.children())
        for pid in stopped:  # a frozen worker cannot shut down warm
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        for process in live:
            process.send_signal(signal.SIGTERM)
        for process in live:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def tails(self, lines: int = 25) -> str:
        parts = []
        for slot in self.slots:
            if slot.log is not None and slot.log.exists():
                text = slot.log.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {slot.log.name}\n" + "\n".join(text))
        return "\n".join(parts)


def make_region(root: Path, count: int, *, zoom: int = 16, x0: int = 34000, y0: int = 22000,
                width: int = 16, first: int = 501) -> list[Tile]:
    """A ``{z}/{x}/{y}.jpg`` tree of ``count`` real EuroSAT JPEGs (round robin over the model's classes)."""
    rows: list[Tile] = []
    for i in range(count):
        name = SUBSET_CLASSES[i % len(SUBSET_CLASSES)]
        source = EUROSAT / name / f"{name}_{first + i // len(SUBSET_CLASSES)}.jpg"
        x, y = x0 + i % width, y0 + i // width
        relative = f"{zoom}/{x}/{y}.jpg"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, root / relative)
        rows.append(Tile(zoom, x, y, relative))
    return rows


def poison(root: Path, row: Tile, *, marker: bytes = POISON) -> None:
    """Make ``row``'s tile a poison tile (or with ``CRASH``, a crashing one): still a valid JPEG, since decoders
    ignore bytes after its end."""
    path = root / row[3]
    path.write_bytes(path.read_bytes() + marker)


def scenario_model(checkpoint: Path, folder: Path, name: str) -> Path:
    """The same weights saved again under another content hash, so every scenario has results of its own."""
    from model.arch import build_model
    from model.checkpoint import read_checkpoint, save_checkpoint

    stored = read_checkpoint(checkpoint)
    meta, state = stored.meta, stored.state_dict
    net = build_model(meta.arch, len(meta.class_names), head=meta.head)
    net.load_state_dict(state)
    path = folder / f"{name}.pt"
    save_checkpoint(path, model=net, meta=replace(meta, metrics={**meta.metrics, "scenario": name}))
    return path


def reference_labels(checkpoint: Path, root: Path, rows: Iterable[Tile]) -> dict[tuple[int, int, int], str]:
    """Each tile's label when nothing goes wrong: the worker's decoding and model, run here in one go."""
    import torch

    from model.predict import Classifier
    from worker.pipeline import load_tile

    classifier = Classifier.load(checkpoint, device="cpu", precision="fp32")
    rows = list(rows)
    labels: dict[tuple[int, int, int], str] = {}
    for start in range(0, len(rows), 32):
        part = rows[start : start + 32]
        images = torch.stack([load_tile(root / row[3], classifier).tensor for row in part])
        for row, prediction in zip(part, classifier.to_predictions(classifier.predict_tensors(images)), strict=True):
            labels[row[:3]] = prediction.label
    return labels


def embedded_queue() -> int:
    """Messages waiting in the embedded filesystem broker of the current settings."""
    from core.celery_app import connected_app, queued_messages
    from core.settings import get_settings

    return queued_messages("classify", connected_app(get_settings()))


def job_state(job_id: int) -> str:
    with session_scope(read_only=True) as session:
        return str(jobs.get_job(session, job_id).state)


def wait_complete(job_id: int, pool: WorkerPool, *, timeout: float = 150) -> None:
    wait_for(lambda: job_state(job_id) == JobState.COMPLETED, timeout=timeout, what=f"job {job_id} to complete",
             pool=pool)


def batches_done(job_id: int) -> int:
    with session_scope(read_only=True) as session:
        return jobs.progress(session, job_id=job_id).batches_done


def check_invariants(*, model_hash: str, job_ids: Iterable[int], rows: Iterable[Tile],
                     reference: dict[tuple[int, int, int], str], redis_server: PrivateRedis | None, pool: WorkerPool,
                     failed: Iterable[str] = (), recounted: int = 0) -> None:
    """The guarantees of docs/RELIABILITY.md after a scenario (see the module docstring).

    ``recounted``: how many tiles a job's progress may count twice (a producer rerun publishes again the unclassified
    tiles of the directory it was in when it was killed); their results are still one row each.
    """
    job_ids, failed = list(job_ids), set(failed)
    expected = {row[:3] for row in rows if row[3] not in failed}
    for job_id in job_ids:
        assert job_state(job_id) == JobState.COMPLETED
    if redis_server is not None:
        wait_for(lambda: redis_server.queued() == (0, 0), timeout=60, what="the broker to hold nothing", pool=pool)
    else:
        assert embedded_queue() == 0
    with session_scope(read_only=True) as session:
        results = session.execute(select(TileResult.z, TileResult.x, TileResult.y, TileResult.label)
                                  .where(TileResult.model_hash == model_hash)).all()
        keys = [(z, x, y) for z, x, y, _ in results]
        assert len(keys) == len(set(keys)), "a tile has more than one result for the model"
        assert set(keys) == expected, (f"{len(expected - set(keys))} tile(s) without a result, "
                                       f"{len(set(keys) - expected)} unexpected")
        both = session.scalar(select(func.count()).select_from(FailedTile).join(TileResult, and_(
            TileResult.model_hash == FailedTile.model_hash, TileResult.source_name == FailedTile.source_name,
            TileResult.path == FailedTile.path)).where(FailedTile.model_hash == model_hash))
        assert both == 0, "a tile is both failed and classified"
        recorded_failed = set(session.scalars(select(FailedTile.path).where(FailedTile.model_hash == model_hash)))
        assert recorded_failed == failed
        wrong = {(z, x, y): (label, reference[(z, x, y)]) for z, x, y, label in results
                 if label != reference[(z, x, y)]}
        assert not wrong, f"labels differ from the fault-free reference: {dict(list(wrong.items())[:5])}"
        for job_id in job_ids:
            done = jobs.progress(session, job_id=job_id)
            assert done.classified + done.failed == done.total, f"job {job_id}: counts {done}"
            assert done.batches_done == done.batches_total
        counted = [jobs.progress(session, job_id=j) for j in job_ids]
        if len(counted) == 1:  # each tile counted once by its job, however often it ran
            assert counted[0].failed == len(failed), counted[0]
            assert len(expected) <= counted[0].classified <= len(expected) + recounted, counted[0]
        else:  # overlapping jobs running at once may both classify a shared tile
            assert sum(c.classified for c in counted) >= len(expected)
