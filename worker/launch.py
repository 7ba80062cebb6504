"""Start the worker processes of one host and stop them together: one per GPU, or a split of the CPU cores.

Every child is a plain ``celery -A worker.app worker --pool solo`` process. The solo pool runs tasks in the
process that loads the model, so nothing forks after CUDA (or the model) is initialised. On a GPU host child *i*
sees only GPU *i* (``CUDA_VISIBLE_DEVICES``), is named ``gpu{i}@<host>`` and decodes tiles on its share of the
cores; on a CPU host the cores are split into processes of a few torch threads each (on 2 cores, 2 processes x 1
thread beat 1 x 2 threads), named ``cpu{i}@<host>``. Options reach the children as ``TILECLASS_*`` variables, the
same ones a plain Celery worker reads.

This module never imports torch: it counts GPUs with ``nvidia-smi -L`` or ``CUDA_VISIBLE_DEVICES``, so the
launcher never initialises CUDA itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

from core.choices import DEVICE_KINDS, INFERENCE_PRECISIONS, check_choice
from core.errors import TileclassError
from core.messages import QUEUES
from core.settings import env_name

MAX_CPU_PROCESSES = 8
# Tiles per forward pass on a GPU when neither --batch-size nor TILECLASS_WORKER_BATCH_SIZE says: the CPU's 16
# would leave a GPU waiting on kernel launches.
GPU_BATCH_SIZE = 256
_PR_SET_PDEATHSIG = 1
log = logging.getLogger(__name__)


class LaunchError(TileclassError):
    """The worker options do not fit this host."""


@dataclass(frozen=True)
class WorkerOptions:
    """What ``tileclass worker`` was asked for; ``None`` means "the setting, or pick for this host"."""

    queues: tuple[str, ...] = ("classify",)
    gpus: str = "all"
    device: str = "auto"
    processes: int | None = None
    per_gpu: int | None = None  # processes per GPU (--per-gpu); on a GPU host --processes means the same
    threads_per_process: int | None = None
    batch_size: int | None = None
    compile: bool | None = None
    precision: str | None = None
    loglevel: str = "info"
    metrics_port: int | None = None  # None: TILECLASS_WORKER_METRICS_PORT (0: no metrics server)
    metrics_host: str | None = None  # None: TILECLASS_METRICS_HOST


@dataclass(frozen=True)
class ChildSpec:
    """One worker process to start: its Celery node name, command line and extra environment."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def parse_queues(text: str) -> tuple[str, ...]:
    """``classify``, ``train`` or ``classify,train``."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in QUEUES]
    if not names or unknown:
        raise LaunchError(f"unknown queue {','.join(unknown) or text!r}: choose classify, train or classify,train")
    return names


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPU ids a child can be pinned to: ``CUDA_VISIBLE_DEVICES`` when set, else those ``nvidia-smi -L`` lists."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        ids = [part.strip() for part in environ["CUDA_VISIBLE_DEVICES"].split(",") if part.strip()]
        # CUDA stops at the first invalid entry, and "-1" is the usual way of hiding every GPU.
        valid: list[str] = []
        for gpu in ids:
            if gpu.startswith("-"):
                break
            valid.append(gpu)
        return valid
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("nvidia-smi -L failed (%s): running on the CPU", exc)
        return []
    if listing.returncode != 0:
        return []
    return [str(i) for i, line in enumerate(line for line in listing.stdout.splitlines() if line.startswith("GPU "))]


def cpu_split(cores: int, processes: int | None, threads: int | None) -> tuple[int, int]:
    """(processes, threads each) for a CPU host: few threads per process, at most 8 processes (memory)."""
    if processes is None and threads is None:
        threads = math.ceil(cores / MAX_CPU_PROCESSES)
    if processes is None:
        assert threads is not None
        processes = max(1, cores // threads)
    if threads is None:
        threads = max(1, cores // processes)
    return processes, threads


def children_for(options: WorkerOptions, *, gpus: Sequence[str], cores: int, python: str = sys.executable,
         gpu_batch_size: int | None = GPU_BATCH_SIZE) -> list[ChildSpec]:
    """The children to start for ``options`` on a host with ``gpus`` visible and ``cores`` CPU cores.

    ``gpu_batch_size``: GPU workers' chunk size unless ``options`` name one (None: the setting's).
    """
    check_choice("device", options.device, DEVICE_KINDS, error=LaunchError)
    if options.precision is not None:
        check_choice("precision", options.precision, INFERENCE_PRECISIONS, error=LaunchError)
    for name, value in (("--processes", options.processes), ("--per-gpu", options.per_gpu),
                        ("--threads-per-process", options.threads_per_process), ("--batch-size", options.batch_size)):
        if value is not None and value < 1:
            raise LaunchError(f"{name} must be at least 1 (got {value})")
    if options.per_gpu is not None and options.processes is not None and options.per_gpu != options.processes:
        raise LaunchError(f"--per-gpu {options.per_gpu} and --processes {options.processes} disagree: on a GPU "
                          "host both count the processes per GPU; give one")
    chosen = _chosen_gpus(options, gpus)
    if options.per_gpu is not None and not chosen:
        raise LaunchError("--per-gpu: this run has no GPU (--device cpu, or none visible); on the CPU use "
                          "--processes and --threads-per-process")
    common = _common_env(options)
    if chosen:
        # Several processes per GPU when one cannot feed it: each decodes on its own cores, the GPU interleaves them.
        per_gpu = options.per_gpu or options.processes or 1
        # The GPU runs the model: a process's CPU work is reading and decoding tiles, so its share of the cores
        # goes to decode threads, each running single-threaded torch ops (the resize) to avoid oversubscription.
        share = max(2, cores // (len(chosen) * per_gpu))
        threads = options.threads_per_process or 1
        if options.batch_size is None and gpu_batch_size is not None:
            common = common | {env_name("worker.batch_size"): str(gpu_batch_size)}
        children = []
        for index, gpu in chosen:
            for k in range(per_gpu):
                name = f"gpu{index}@%h" if per_gpu == 1 else f"gpu{index}-{k}@%h"
                env = common | _thread_env(threads) | {"CUDA_VISIBLE_DEVICES": gpu, env_name("device"): "cuda",
                                                       env_name("worker.decode_threads"): str(share)}
                children.append(ChildSpec(name, _celery_argv(python, options, name), env))
        return children
    processes, threads = cpu_split(cores, options.processes, options.threads_per_process)
    env = common | _thread_env(threads) | {env_name("device"): "cpu"}
    return [ChildSpec(f"cpu{i}@%h", _celery_argv(python, options, f"cpu{i}@%h"), dict(env)) for i in range(processes)]


def _chosen_gpus(options: WorkerOptions, gpus: Sequence[str]) -> list[tuple[int, str]]:
    """(index, CUDA_VISIBLE_DEVICES entry) of the GPUs to use; empty for a CPU run."""
    if options.device == "cpu":
        if options.gpus != "all":
            raise LaunchError("--gpus cannot be combined with --device cpu")
        return []
    if options.gpus == "all":
        indexes = list(range(len(gpus)))
    else:
        try:
            indexes = list(dict.fromkeys(int(part) for part in options.gpus.split(",") if part.strip()))
        except ValueError:
            raise LaunchError(f"--gpus {options.gpus!r}: use 'all' or GPU numbers like 0,1") from None
        missing = [i for i in indexes if not 0 <= i < len(gpus)]
        if missing or not indexes:
            seen = f"GPUs 0..{len(gpus) - 1} are visible" if gpus else "no GPU is visible"
            raise LaunchError(f"--gpus {options.gpus}: {seen} (nvidia-smi -L / CUDA_VISIBLE_DEVICES)")
    if not indexes and options.device == "cuda":
        raise LaunchError("--device cuda: no GPU is visible (nvidia-smi -L / CUDA_VISIBLE_DEVICES); use --device cpu")
    return [(i, gpus[i]) for i in indexes]


def _common_env(options: WorkerOptions) -> dict[str, str]:
    env: dict[str, str] = {}
    if options.batch_size is not None:
        env[env_name("worker.batch_size")] = str(options.batch_size)
    if options.compile is not None:
        env[env_name("worker.compile")] = "true" if options.compile else "false"
    if options.precision is not None:
        env[env_name("worker.precision")] = options.precision
    return env


def _thread_env(threads: int) -> dict[str, str]:
    # OMP/MKL read their variables when torch loads, before any of our code runs in the child.
    return {env_name("worker.threads"): str(threads), "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads)}


def _celery_argv(python: str, options: WorkerOptions, name: str) -> list[str]:
    return [python, "-m", "celery", "-A", "worker.app", "worker", "--pool", "solo", "-Q", ",".join(options.queues),
            "--hostname", name, "--loglevel", options.loglevel, "--without-mingle", "--without-gossip"]


def _die_with_parent() -> None:
    """In the child, before exec: own process group (terminal signals go to the launcher only, which forwards
    them), and a warm-shutdown signal if the launcher dies without stopping us."""
    os.setpgrp()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Runs the children, forwards SIGINT/SIGTERM as a warm shutdown (a second one as a cold shutdown)."""

    def __init__(self, specs: Sequence[ChildSpec], environ: Mapping[str, str] | None = None,
                 on_exit: Callable[[int], None] | None = None) -> None:
        self.specs = list(specs)
        self.environ = dict(os.environ if environ is None else environ)
        self.on_exit = on_exit  # called once with the pid of each child that exited (metrics: mark it dead)
        self.children: list[subprocess.Popen[bytes]] = []
        self.signals_seen = 0
        self._exited: set[int] = set()

    def run(self) -> int:
        """Start every child and wait for all of them; 0 when they all stopped cleanly."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for spec in self.specs:
                if self.signals_seen:
                    break
                log.info("starting %s: %s", spec.name, " ".join(spec.argv[1:]))
                self.children.append(subprocess.Popen(spec.argv, env=self.environ | spec.env,
                                                      preexec_fn=_die_with_parent))
            return self._wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._send(signal.SIGKILL)  # reaches only children still alive when the launcher itself fails

    def _wait(self) -> int:
        while True:
            codes = [child.poll() for child in self.children]
            self._report_exits(codes)
            if all(code is not None for code in codes):
                return 0 if all(code == 0 for code in codes) else 1
            failed = [(spec, code) for spec, code in zip(self.specs, codes, strict=False) if code not in (None, 0)]
            if failed and not self.signals_seen:
                spec, code = failed[0]
                log.error("worker %s exited with code %s: stopping the others", spec.name, code)
                self.signals_seen = 1
                self._send(signal.SIGTERM)
            time.sleep(0.2)

    def _report_exits(self, codes: Sequence[int | None]) -> None:
        for child, code in zip(self.children, codes, strict=True):
            if code is not None and child.pid not in self._exited:
                self._exited.add(child.pid)
                if self.on_exit is not None:
                    self.on_exit(child.pid)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals_seen += 1
        # SIGTERM is Celery's warm shutdown (the current batch finishes); SIGQUIT its cold one, after which
        # the unacknowledged message goes back to the queue.
        forwarded = signal.SIGTERM if self.signals_seen == 1 else signal.SIGQUIT
        log.info("received %s: sending %s to %d worker(s)", signal.Signals(signum).name,
                 forwarded.name, len(self.children))
        self._send(forwarded)

    def _send(self, sig: signal.Signals) -> None:
        for child in self.children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(sig)


def launch(options: WorkerOptions) -> int:
    """Start the workers ``options`` ask for on this host and wait until they stop; returns the exit code."""
    from core.settings import get_settings
    from worker.brokercheck import check_broker_credentials

    settings = get_settings()
    check_broker_credentials(settings)  # a wrong password stops here in one line, before any child starts
    batch_size_set = "batch_size" in settings.worker.model_fields_set  # from the environment or .env
    specs = children_for(options, gpus=visible_gpus(), cores=len(os.sched_getaffinity(0)),
                 gpu_batch_size=None if batch_size_set else GPU_BATCH_SIZE)
    port = settings.worker.metrics_port if options.metrics_port is None else options.metrics_port
    if not port:
        return Supervisor(specs).run()
    from core.metrics.serving import MULTIPROC_ENV, MultiprocessMetrics

    # One port for the host: the children write their samples to one multiprocess folder, served from here.
    host = options.metrics_host or settings.metrics.host
    with MultiprocessMetrics(host=host, port=port, folder=os.environ.get(MULTIPROC_ENV) or None) as served:
        environ = dict(os.environ) | served.child_env | {env_name("worker.metrics_port"): "0"}
        return Supervisor(specs, environ, on_exit=served.process_exited).run()
