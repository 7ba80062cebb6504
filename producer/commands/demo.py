"""``tileclass demo``: the whole pipeline on one machine, on the embedded default (SQLite, filesystem broker).

The demo runs the very commands a person would type (printed at the end, with the line that puts ``tileclass`` on
a new terminal's PATH), as child processes: train, a background worker, enqueue, status, summary, a point query and
a rendered map. The worker it starts is stopped on every exit path, Ctrl-C included.

Training is a fixed number of epochs, not a time budget: the headline agreement is then the same on a busy machine
as on a quiet one, only later. ``DEMO_EPOCHS`` over ``DEMO_PER_CLASS`` images per class is sized to finish in
about two minutes on the slowest CPU the demo is meant for (a 2-core AVX2-only EPYC).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer

from core.errors import TileclassError

DEMO_LON, DEMO_LAT = -9.1393, 38.7223  # Lisbon
# 5 epochs of 1,200 training images (4 of every 5 of 300 per class): about 25 s of training on a quiet 2-core AMD EPYC
# with AVX-512 BF16, 1-2 minutes where training is 3-5x slower. Agreement on the region (seed 7): 96.5% after 2
# epochs, 98.4-100% after 3 to 6.
DEMO_EPOCHS = 5
DEMO_PER_CLASS = 300


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", help="Working folder: data, database, model, pictures."),
    data: Path | None = typer.Option(None, "--data", help="Train on this ImageFolder (one folder per class) "
                                     "instead of generated imagery; the region is built from its images too."),
    epochs: int = typer.Option(DEMO_EPOCHS, "--epochs", min=1, max=200,
                               help="Training epochs: a fixed amount of training, so the result does not depend on "
                               "how busy the machine is (with --data, each epoch is your whole folder)."),
    per_class: int = typer.Option(DEMO_PER_CLASS, "--per-class", min=10, max=5000,
                                  help="Generated training images per class (not used with --data)."),
    region_size: int = typer.Option(16, "--region-size", min=2, max=64, help="The region is N x N tiles."),
    zoom: int = typer.Option(16, "--zoom", min=1, max=22, help="Zoom level of the region's tiles."),
    seed: int = typer.Option(7, "--seed", help="Seed for the generated imagery, the region and training."),
    serve: bool = typer.Option(False, "--serve", help="End by serving the results on a web map (tileclass serve) "
                               "until Ctrl-C."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="With --serve: the map's port on 127.0.0.1."),
) -> None:
    """Run the whole pipeline once on this machine: make data, train, classify a region, query, draw it."""
    from producer.demo import region as demo_region
    from producer.demo.steps import (
        WORKER_ARGS,
        agreement,
        background_worker,
        print_hand_steps,
        tileclass,
        wait_for_job,
    )

    if data is not None and not data.is_dir():
        raise TileclassError(f"--data {str(data)!r} is not a directory of class folders")
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    data = data.resolve() if data is not None else None
    os.chdir(out)
    typer.secho(f"tileclass demo in {Path.cwd()}", bold=True, err=True)

    typer.echo("making training data and the region's tile tree…", err=True)
    train_dir = demo_region.prepare_training_data(Path("train-data"), user_data=data, per_class=per_class, seed=seed)
    region = demo_region.build_region(Path("tiles"), lon=DEMO_LON, lat=DEMO_LAT, zoom=zoom, size=region_size,
                                      seed=seed, user_data=data)
    train_args = ["train", str(train_dir), "--out", "training", "--arch", "resnet18", "--weights", "none",
                  "--image-size", "64", "--batch-size", "64", "--lr", "0.05", "--epochs", str(epochs),
                  "--seed", str(seed)]
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
    print_hand_steps([train_args, [*WORKER_ARGS, "  # in another terminal, after the same two lines"], enqueue_args,
                      ["status", "--watch"], ["summary", str(job_id)],
                      ["query", "point", f"--lon={lon:.5f}", f"--lat={lat:.5f}", "--zoom", str(zoom)],
                      ["render", str(job_id), "--out", "map.png", "--imagery"],
                      ["serve", "--port", str(port), f"  # then open http://127.0.0.1:{port}/?job={job_id}"]],
                     try_now=["summary", str(job_id)])
    if serve:
        typer.secho(f"\nthe map: http://127.0.0.1:{port}/?job={job_id}; the login URL that 'tileclass serve' prints "
                    "below opens it signed in, to review its answers  (Ctrl-C stops the server)", bold=True)
        tileclass(["serve", "--port", str(port)])


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
