"""Follow one tile from `tileclass enqueue` to `/api/tiles` and list the files and shapes it passes through.

Usage: ``.venv/bin/python scripts/tile_path.py [--json]``

It runs the real path in one process, on a temporary folder: a 2 x 2 tree of PNG tiles at zoom 16 and a random
ResNet18 checkpoint, ``tileclass enqueue`` through the CLI, each queued batch through the worker's Celery task on
the embedded broker and a SQLite file, and ``GET /api/tiles/16/X/Y`` through the HTTP API. A tracer watches every
call and return of the project's own functions (core, model, producer, worker, api; any thread) and notes where
one of them receives or returns the followed tile, in whatever shape it has there: the ``Tile`` value, the
message's ``[z, x, y, path]`` row, a dict with z/x/y, a database row, the ``"Z/X/Y"`` text, or anything holding one
of those (searched three levels deep). Its report is the number of project files the tile passes through and the
shapes it takes, the measure that docs/ARCHITECTURE.md quotes for "one tile followed through the code".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "model", "producer", "worker", "api")
ZOOM, X, Y = 16, 31104, 25111
FOLLOWED = (ZOOM, X, Y)


def shape_of(value: Any, depth: int = 3) -> str | None:
    """The shape the followed tile has in ``value`` (the innermost holder's type), or None if it is not there."""
    if isinstance(value, str):
        return "str 'Z/X/Y'" if value == "/".join(map(str, FOLLOWED)) else None
    if not isinstance(value, type) and _same(tuple(getattr(value, name, None) for name in "zxy")):
        return type(value).__name__  # a Tile, a database row, a result...
    if isinstance(value, list | tuple) and len(value) >= 3 and _same(tuple(value[:3])):
        return f"{type(value).__name__} [z, x, y, ...]"
    if isinstance(value, dict) and _same(tuple(value.get(k) for k in "zxy")):
        return "dict {z, x, y}"
    if depth == 0:
        return None
    return next(filter(None, (shape_of(inner, depth - 1) for inner in _inside(value))), None)


def _same(coordinates: tuple[Any, ...]) -> bool:
    return all(type(c) is int for c in coordinates) and coordinates == FOLLOWED


def _inside(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        return list(value.values())[:200]
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)[:200]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [getattr(value, f.name, None) for f in dataclasses.fields(value)]
    return ()


class Tracer:
    """Notes, per project file, the shapes in which its functions receive or return the followed tile."""

    def __init__(self) -> None:
        self.seen: dict[str, set[str]] = {}
        self.order: list[str] = []
        self._lock = threading.Lock()

    def _note(self, frame: FrameType, value: Any) -> None:
        shape = shape_of(value)
        if shape is None:
            return
        path = Path(frame.f_code.co_filename).resolve().relative_to(REPO).as_posix()
        with self._lock:
            if path not in self.seen:
                self.seen[path] = set()
                self.order.append(path)
            self.seen[path].add(shape)

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event != "call" or not _is_project(frame.f_code.co_filename):
            return None
        for name in frame.f_code.co_varnames[: frame.f_code.co_argcount + frame.f_code.co_kwonlyargcount]:
            self._note(frame, frame.f_locals.get(name))
        return self._local

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "return":
            self._note(frame, arg)
        return self._local


def _is_project(filename: str) -> bool:
    try:
        relative = Path(filename).resolve().relative_to(REPO)
    except ValueError:
        return False
    return relative.parts[0] in PACKAGES


def setup(folder: Path) -> tuple[Path, Path]:
    """A 2 x 2 tree of PNG tiles around the followed one and a random ResNet18 checkpoint."""
    import numpy as np
    import torch
    from PIL import Image

    from model.arch import build_model
    from model.checkpoint import CheckpointMeta, save_checkpoint
    from model.transforms import IMAGENET_MEAN, IMAGENET_STD

    tree = folder / "tiles"
    rng = np.random.default_rng(0)
    for dx in (0, 1):
        for dy in (0, 1):
            target = tree / str(ZOOM) / str(X + dx) / f"{Y + dy}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(target)
    torch.manual_seed(0)
    meta = CheckpointMeta(arch="resnet18", class_names=("field", "water"), image_size=32, mean=IMAGENET_MEAN,
                          std=IMAGENET_STD)
    checkpoint = folder / "model.pt"
    save_checkpoint(checkpoint, model=build_model("resnet18", 2), meta=meta)
    return tree, checkpoint


def run(folder: Path, tracer: Tracer) -> dict[str, Any]:
    """enqueue -> the worker's task for each batch -> GET /api/tiles, traced; the tile's API answer."""
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from api.main import create_app
    from core.messages import CLASSIFY_QUEUE, CLASSIFY_TASK
    from producer.cli import app as cli

    tree, checkpoint = setup(folder)
    threading.settrace(tracer)
    sys.settrace(tracer)
    try:
        enqueued = CliRunner().invoke(cli, ["enqueue", str(tree), "--model", str(checkpoint), "--zoom", str(ZOOM)])
        if enqueued.exit_code != 0:
            raise SystemExit(f"tile_path: enqueue failed: {enqueued.output}")
        from worker.app import app as celery

        with celery.connection_for_read() as connection:
            queue = connection.SimpleQueue(celery.amqp.queues[CLASSIFY_QUEUE], accept=["json"])
            while True:
                try:
                    message = queue.get(block=True, timeout=0.5)
                except queue.Empty:
                    break
                _, kwargs, _ = message.payload
                celery.tasks[CLASSIFY_TASK].apply(kwargs=kwargs)
                message.ack()
            queue.close()
        with TestClient(create_app()) as client:
            answer = client.get(f"/api/tiles/{ZOOM}/{X}/{Y}")
    finally:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
    if answer.status_code != 200:
        raise SystemExit(f"tile_path: /api/tiles answered {answer.status_code}: {answer.text}")
    return dict(answer.json())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tileclass-tile-path-") as tmp:
        folder = Path(tmp)
        os.environ.update({"TILECLASS_DATABASE_URL": f"sqlite:///{folder / 'results.db'}",
                           "TILECLASS_DATA_DIR": str(folder / ".tileclass"), "TILECLASS_MODEL_DIR": str(folder / "m"),
                           "TILECLASS_DEVICE": "cpu", "TILECLASS_WORKER_COMPILE": "false"})
        sys.path.insert(0, str(REPO))
        tracer = Tracer()
        answer = run(folder, tracer)
    shapes = sorted({shape for found in tracer.seen.values() for shape in found})
    report = {"tile": "/".join(map(str, FOLLOWED)), "label": answer.get("label"), "files": len(tracer.order),
              "shapes": shapes, "path": [{"file": f, "shapes": sorted(tracer.seen[f])} for f in tracer.order]}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"tile {report['tile']} ({report['label']}) passes through {report['files']} project files "
          f"in {len(shapes)} shapes: {', '.join(shapes)}")
    for step in report["path"]:
        print(f"  {step['file']}: {', '.join(step['shapes'])}")


if __name__ == "__main__":
    main()
