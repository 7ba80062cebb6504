"""Builders for the worker tests: a tiny checkpoint, tile trees of real JPEGs, broken tiles, worker processes."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from core.tiles import Tile
from tests.conftest import EUROSAT, REPO_ROOT
from tests.factories import corrupted_in_the_middle

CLASSES = ("Forest", "River", "Residential")


def tiny_checkpoint(folder: Path, *, image_size: int = 32, seed: int = 0, arch: str = "resnet18",
                    quantization_images: int = 0) -> Path:
    """A random-init checkpoint (with its sidecar) of ``arch`` for ``CLASSES``, with ``quantization_images`` real
    EuroSAT images for int8: the worker's speed and plumbing do not depend on how well it classifies."""
    import torch

    from model.arch import build_model
    from model.checkpoint import CheckpointMeta, save_checkpoint
    from model.images import decode_tile
    from model.transforms import IMAGENET_MEAN, IMAGENET_STD

    torch.manual_seed(seed)
    meta = CheckpointMeta(arch=arch, class_names=CLASSES, image_size=image_size, mean=IMAGENET_MEAN,
                          std=IMAGENET_STD)
    path = folder / f"{arch}-{image_size}-{seed}{'-int8' if quantization_images else ''}.pt"
    images = (torch.stack([decode_tile(f.read_bytes()).pixels for f in eurosat_files(quantization_images)])
              if quantization_images else None)
    save_checkpoint(path, model=build_model(arch, len(CLASSES)), meta=meta, quantization_images=images)
    return path


def eurosat_files(count: int, *,
                  classes: tuple[str, ...] = ("Forest", "River", "Residential", "SeaLake")) -> list[Path]:
    """``count`` real 64x64 EuroSAT JPEGs, taken in a fixed order round-robin over ``classes``."""
    per_class = count // len(classes) + 1
    lists = [[EUROSAT / name / f"{name}_{i}.jpg" for i in range(1, per_class + 1)] for name in classes]
    return [lists[i % len(classes)][i // len(classes)] for i in range(count)]


def tile_tree(root: Path, count: int, *, zoom: int = 17, x0: int = 70000, y0: int = 42000,
              width: int = 16) -> list[Tile]:
    """A z/x/y.jpg tree of ``count`` real JPEG tiles under ``root``; returns the batch rows for them."""
    rows: list[Tile] = []
    for i, source in enumerate(eurosat_files(count)):
        x, y = x0 + i % width, y0 + i // width
        relative = f"{zoom}/{x}/{y}.jpg"
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        rows.append(Tile(zoom, x, y, relative))
    return rows


def bomb_png() -> bytes:
    """A valid, tiny PNG whose header declares 100,000 x 100,000 pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def broken_tiles(root: Path, *, zoom: int = 17, x: int = 1) -> dict[Tile, str]:
    """Unusable tiles written under ``root`` (and one missing), mapped to a word their failure reason must contain."""
    good = (EUROSAT / "Forest" / "Forest_1.jpg").read_bytes()
    contents = {
        "zero": (b"", "zero-byte"),
        "truncated": (good[: len(good) // 2], "truncated"),
        "text": (b"this is not an image\n" * 20, "not an image"),
        "bomb": (bomb_png(), "decompression bomb"),
        "corrupt": (good[:200] + bytes(range(256)) * 4 + good[-2:], "corrupt"),
        "smeared": (corrupted_in_the_middle((EUROSAT / "Residential" / "Residential_1.jpg").read_bytes()),
                    "Corrupt JPEG data"),
        "postscript": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n", "format EPS is not allowed"),
    }
    expected: dict[Tile, str] = {}
    for y, (name, (data, word)) in enumerate(contents.items()):
        relative = f"{zoom}/{x}/{y}.{'png' if name == 'bomb' else 'jpg'}"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
        expected[Tile(zoom, x, y, relative)] = word
    expected[Tile(zoom, x, 99, f"{zoom}/{x}/99.jpg")] = "no such file"
    return expected


def worker_env(**settings: str | Path) -> dict[str, str]:
    """The environment of a worker subprocess: this one's, minus outside TILECLASS_* values, plus ``settings``
    (``database_url="..."`` -> ``TILECLASS_DATABASE_URL``) and small thread counts for the shared 2 cores."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILECLASS_") or k.startswith("TILECLASS_TEST_")}
    env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TILECLASS_WORKER_COMPILE": "false",
            "TILECLASS_WORKER_THREADS": "1", "TILECLASS_WORKER_DECODE_THREADS": "1",
            "PYTHONPATH": str(REPO_ROOT)}
    env |= {f"TILECLASS_{key.upper()}": str(value) for key, value in settings.items()}
    return env


def start_celery(env: Mapping[str, str], *, cwd: Path, name: str, queues: str = "classify",
                 log: Path | None = None, app: str = "worker.app") -> subprocess.Popen[bytes]:
    """A plain ``celery -A worker.app worker --pool solo`` process (how people run Celery their own way)."""
    argv = [sys.executable, "-m", "celery", "-A", app, "worker", "--pool", "solo", "-Q", queues,
            "--hostname", f"{name}@%h", "--loglevel", "info", "--without-mingle", "--without-gossip"]
    return _spawn(argv, env, cwd, log or cwd / f"{name}.log")


def start_launcher(args: list[str], env: Mapping[str, str], *, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """``tileclass worker ARGS`` (the console script installed in this environment) as a subprocess."""
    return _spawn([str(Path(sys.executable).parent / "tileclass"), "worker", *args], env, cwd, log)


def _spawn(argv: list[str], env: Mapping[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen(argv, env=dict(env), cwd=cwd, stdout=handle, stderr=subprocess.STDOUT)


@contextmanager
def running(process: subprocess.Popen[bytes], *, log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Stop ``process`` (and its process group's workers) however the test ends."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str, logs: tuple[Path, ...] = (),
             processes: tuple[subprocess.Popen[bytes], ...] = ()) -> None:
    """Poll ``condition`` until it holds; fail with the workers' logs if it does not within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        dead = [p for p in processes if p.poll() is not None]
        if dead:
            raise AssertionError(f"a worker exited (code {dead[0].returncode}) while waiting for {what}\n"
                                 + tail(*logs))
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n" + tail(*logs))


def tail(*logs: Path, lines: int = 40) -> str:
    parts = []
    for log in logs:
        if log.exists():
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
    return "\n".join(parts)
