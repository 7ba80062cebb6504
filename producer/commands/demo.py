"""``tileclass demo``: the whole pipeline on one machine, on the embedded default (SQLite, filesystem broker).

The demo runs the very commands a person would type (printed at the end), as child processes: train, a
background worker, enqueue, status, summary, a point query and a rendered map. The worker it starts is stopped
on every exit path, Ctrl-C included.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer

from core.errors import TileclassError

DEMO_LON, DEMO_LAT = -9.1393, 38.7223  # Lisbon


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Working folder: data, database, model, pictures."),
    data: Path | None = typer.Option(None, "--data", help="Train on this ImageFolder (one folder per class) "
                                     "instead of generated imagery; the region is built from its images too."),
    train_minutes: float = typer.Option(1.5, "--train-minutes", min=0.1, help="Training time budget."),
    region_size: int = typer.Option(16, "--region-size", min=2, max=64, help="The region is N x N tiles."),
    zoom: int = typer.Option(16, "--zoom", min=1, max=22, help="Zoom level of the region's tiles."),
    seed: int = typer.Option(7, "--seed", help="Seed for the generated imagery, the region and training."),
    serve: bool = typer.Option(False, "--serve", help="End by serving the results on a web map (tileclass serve) "
                               "until Ctrl-C."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="With --serve: the map's port on 127.0.0.1."),
) -> None:
    """Run the whole pipeline once on this machine: make data, train, classify a region, query, draw it."""
    from producer.demo import region as demo_region
    from producer.demo.steps import WORKER_ARGS, agreement, background_worker, tileclass, wait_for_job

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
    tileclass(train_args)
    lon, lat = region.centre
    enqueue_args = ["enqueue", "tiles", "--model", "training/model.pt", "--zoom", str(zoom),
                    f"--bbox={region.bbox}", "--batch-size", "32"]
    with background_worker(Path("worker.log").resolve()) as worker:
        job = json.loads(tileclass([*enqueue_args, "--json"], capture=True))
        job_id = int(job["job_id"])
        final = wait_for_job(job_id, worker, timeout_s=240)
    tileclass(["status", str(job_id)])
    tileclass(["summary", str(job_id)])
    tileclass(["query", "point", f"--lon={lon:.5f}", f"--lat={lat:.5f}", "--zoom", str(zoom)])
    tileclass(["render", str(job_id), "--out", "map.png", "--imagery"])
    share = agreement(region.truth)
    typer.secho(f"\njob {job_id} {final['state']}: {final['classified']} tiles classified, {final['failed']} failed; "
                f"{share:.1%} agree with the land cover the region was generated from "
                f"({time.monotonic() - started:.0f} s in all)", bold=True)
    typer.echo(f"pictures: {Path('map.png').resolve()}, {Path('training/loss.png').resolve()}, "
               f"{Path('training/confusion.png').resolve()}")
    typer.echo("\nTo do each step by hand:\n  cd " + str(Path.cwd()))
    for args in (train_args, [*WORKER_ARGS, "  # in another terminal"], enqueue_args,
                 ["status", "--watch"], ["summary", str(job_id)],
                 ["query", "point", f"--lon={lon:.5f}", f"--lat={lat:.5f}", "--zoom", str(zoom)],
                 ["render", str(job_id), "--out", "map.png", "--imagery"],
                 ["serve", "--port", str(port), f"  # then open http://127.0.0.1:{port}/?job={job_id}"]):
        typer.echo("  tileclass " + " ".join(args))
    if serve:
        typer.secho(f"\nthe map: http://127.0.0.1:{port}/?job={job_id}; the login URL that 'tileclass serve' prints "
                    "below opens it signed in, to review its answers  (Ctrl-C stops the server)", bold=True)
        tileclass(["serve", "--port", str(port)])


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
