"""``tileclass demo``: the whole pipeline on one machine, on the embedded default (SQLite, filesystem broker).

The demo runs the very commands a person would type (printed at the end), as child processes: train, a
background worker, enqueue, status, summary, a point query and a rendered map. The worker it starts is stopped
on every exit path, Ctrl-C included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import typer

from core.errors import TileclassError

DEMO_LON, DEMO_LAT = -9.1393, 38.7223  # Lisbon
# Compiling pays off over millions of tiles, not over the demo's few hundred small ones.
WORKER_ARGS = ("worker", "--device", "cpu", "--no-compile")


def _env() -> dict[str, str]:
    """The embedded default: drop any TILECLASS_* deployment settings from the caller's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILECLASS_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _tileclass(args: Sequence[str], *, capture: bool = False) -> str:
    typer.secho(f"\n$ tileclass {' '.join(args)}", fg=typer.colors.CYAN, err=True)
    result = subprocess.run([sys.executable, "-m", "producer", *args], env=_env(), text=True,
                            stdout=subprocess.PIPE if capture else None)
    if result.returncode != 0:
        raise TileclassError(f"demo step 'tileclass {args[0]}' failed with exit code {result.returncode}")
    return result.stdout or ""


@contextmanager
def _background_worker(log: Path) -> Iterator[subprocess.Popen[bytes]]:
    typer.secho(f"\n$ tileclass {' '.join(WORKER_ARGS)} &   (log: {log})", fg=typer.colors.CYAN, err=True)
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "producer", *WORKER_ARGS],
                                   env=_env(), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)  # warm shutdown of the launcher and its Celery children
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        _kill(process)
    except KeyboardInterrupt:  # Ctrl-C while waiting for the warm shutdown: do not wait, do not leave them
        _kill(process)
        raise
    typer.echo("background worker stopped", err=True)


def _kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # the launcher's children share its process group
    process.wait()
    typer.echo("background worker killed", err=True)


def _wait_for_job(job_id: int, worker: subprocess.Popen[bytes], timeout_s: float) -> dict[str, object]:
    """Poll the job until it completes; fail clearly if the worker dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        status = json.loads(_quiet(["status", str(job_id), "--json"]))
        if status["state"] in ("completed", "cancelled", "failed"):
            return dict(status)
        if worker.poll() is not None:
            raise TileclassError(f"the background worker exited with code {worker.returncode}; see worker.log")
        if time.monotonic() > deadline:
            raise TileclassError(f"job {job_id} did not finish within {timeout_s:.0f} s; see worker.log")
        line = f"  job {job_id}: {status['classified']}/{status['total']} classified, {status['failed']} failed"
        if line != last:
            typer.echo(line, err=True)
            last = line
        time.sleep(1)


def _quiet(args: Sequence[str]) -> str:
    result = subprocess.run([sys.executable, "-m", "producer", *args], env=_env(), text=True, capture_output=True)
    if result.returncode != 0:
        raise TileclassError(f"'tileclass {' '.join(args)}' failed: {result.stderr.strip()}")
    return result.stdout


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Working folder: data, database, model, pictures."),
    data: Path | None = typer.Option(None, "--data", help="Train on this ImageFolder (one folder per class) "
                                     "instead of generated imagery; the region is built from its images too."),
    train_minutes: float = typer.Option(1.5, "--train-minutes", min=0.1, help="Training time budget."),
    region_size: int = typer.Option(16, "--region-size", min=2, max=64, help="The region is N x N tiles."),
    zoom: int = typer.Option(16, "--zoom", min=1, max=22, help="Zoom level of the region's tiles."),
    seed: int = typer.Option(7, "--seed", help="Seed for the generated imagery, the region and training."),
) -> None:
    """Run the whole pipeline once on this machine: make data, train, classify a region, query, draw it."""
    from producer import demo_region

    if data is not None and not data.is_dir():
        raise TileclassError(f"--data {str(data)!r} is not a directory of class folders")
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    data = data.resolve() if data is not None else None
    os.chdir(out)
    typer.secho(f"tileclass demo in {Path.cwd()}", bold=True, err=True)

    typer.echo("making training data and the region's tile tree…", err=True)
    train_dir = demo_region.prepare_training_data(Path("train-data"), user_data=data, per_class=300, seed=seed)
    region = demo_region.build_region(Path("tiles"), lon=DEMO_LON, lat=DEMO_LAT, zoom=zoom, size=region_size,
                                      seed=seed, user_data=data)
    train_args = ["train", str(train_dir), "--out", "training", "--arch", "resnet18", "--weights", "none",
                  "--image-size", "64", "--batch-size", "64", "--lr", "0.05", "--epochs", "40",
                  "--time-budget", str(train_minutes), "--seed", str(seed)]
    _tileclass(train_args)
    lon, lat = region.centre
    enqueue_args = ["enqueue", "tiles", "--model", "training/model.pt", "--zoom", str(zoom),
                    f"--bbox={region.bbox}", "--batch-size", "32"]
    with _background_worker(Path("worker.log").resolve()) as worker:
        job = json.loads(_tileclass([*enqueue_args, "--json"], capture=True))
        job_id = int(job["job_id"])
        final = _wait_for_job(job_id, worker, timeout_s=240)
    _tileclass(["status", str(job_id)])
    _tileclass(["summary", str(job_id)])
    _tileclass(["query", "point", f"--lon={lon:.5f}", f"--lat={lat:.5f}", "--zoom", str(zoom)])
    _tileclass(["render", str(job_id), "--out", "map.png", "--imagery"])
    agreement = _agreement(region.truth)
    typer.secho(f"\njob {job_id} {final['state']}: {final['classified']} tiles classified, {final['failed']} failed; "
                f"{agreement:.1%} agree with the land cover the region was generated from "
                f"({time.monotonic() - started:.0f} s in all)", bold=True)
    typer.echo(f"pictures: {Path('map.png').resolve()}, {Path('training/loss.png').resolve()}, "
               f"{Path('training/confusion.png').resolve()}")
    typer.echo("\nTo do each step by hand:\n  cd " + str(Path.cwd()))
    for args in (train_args, [*WORKER_ARGS, "  # in another terminal"], enqueue_args,
                 ["status", "--watch"], ["summary", str(job_id)],
                 ["query", "point", f"--lon={lon:.5f}", f"--lat={lat:.5f}", "--zoom", str(zoom)],
                 ["render", str(job_id), "--out", "map.png", "--imagery"]):
        typer.echo("  tileclass " + " ".join(args))


def _agreement(truth: dict[str, str]) -> float:
    """Share of the region's tiles whose stored label is the class they were generated from."""
    from core.db import session_scope
    from core.queries import tile_result
    from core.tiles import Tile

    agreeing = 0
    with session_scope() as session:
        for spec, label in truth.items():
            answer = tile_result(session, tile=Tile.parse(spec))
            agreeing += answer is not None and answer.label == label
    return agreeing / max(len(truth), 1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
