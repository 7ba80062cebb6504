"""``tileclass train DATA_DIR``: train a tile classifier here, or queue the run for a train worker (``--queue``).

The defaults are the fast from-scratch recipe (ResNet18 at the data's native size, SGD Nesterov, warm-up +
cosine). The PyTorch aerial-tiles tutorial's recipe is reachable exactly through options (see the README).
With ``--time-budget`` a short probe first says how many epochs the budget allows, and which smaller
``--image-size`` would fit when that is under 15 (model/budget.py). Each epoch's end leaves a checkpoint of the
whole run in ``OUT/epochs/``; ``--resume`` continues from the newest. torch is imported only when training runs
here; ``--queue`` needs no torch on this host.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from core.errors import TileclassError
from producer.commands.options import Json

if TYPE_CHECKING:
    from model.config import TrainConfig


def train(
    data_dir: Path = typer.Argument(..., help="ImageFolder directory: one sub-folder of images per class."),
    arch: str = typer.Option("resnet18", help="Network: resnet18, resnet34, resnet50 or resnet101."),
    weights: str = typer.Option(
        "none", help="Starting weights: imagenet (torchvision's weights API, needs the internet once), none, "
        "or PATH to a local torchvision state_dict."),
    head: str = typer.Option(
        "linear", help="Classifier head: linear, or tutorial (Linear 512 -> ReLU -> Dropout 0.2 -> Linear -> "
        "LogSoftmax)."),
    freeze: str = typer.Option("none", help="backbone: train only the head (transfer learning); none: train all."),
    epochs: int = typer.Option(20, help="Epochs (with --time-budget: the most epochs)."),
    batch_size: int = typer.Option(128, help="Images per training step."),
    lr: float = typer.Option(0.1, help="Peak learning rate."),
    optimizer: str = typer.Option("sgd", help="sgd (Nesterov, momentum 0.9) or adam."),
    weight_decay: float = typer.Option(5e-4, help="L2 weight decay."),
    label_smoothing: float = typer.Option(0.1, help="Label smoothing of the training loss (0 for none)."),
    schedule: str = typer.Option("cosine", help="cosine (warm-up, then cosine to zero at the end) or constant."),
    warmup: float = typer.Option(0.03, help="Share of the cosine schedule spent warming up."),
    time_budget: float | None = typer.Option(
        None, "--time-budget", metavar="MINUTES",
        help="Stop training after this many minutes of training steps; the cosine reaches zero exactly then."),
    val_split: float = typer.Option(0.2, help="Share of each class held out for validation (seeded, stratified)."),
    seed: int = typer.Option(0, help="Seed for the split, the initialisation and the augmentation."),
    image_size: int | None = typer.Option(
        None, help="Input size in pixels (the tutorial used 224). Default: the images' native size."),
    augment: str = typer.Option(
        "overhead", help="overhead (flips, 90-degree turns, small shifts, mild colour jitter) or none."),
    device: str | None = typer.Option(None, help="auto, cpu, cuda or cuda:N. Default: TILECLASS_DEVICE (auto)."),
    precision: str = typer.Option("auto", help="auto (bf16 where the hardware computes it), fp32 or bf16."),
    eval_every: int = typer.Option(
        0, metavar="STEPS", help="Also validate every STEPS steps and print the tutorial's line (it used 10)."),
    workers: int = typer.Option(0, help="Image decoding threads (0: one per CPU)."),
    val_dir: Path | None = typer.Option(
        None, help="Validate on this ImageFolder (e.g. a data set's official test split; class folders matched "
        "case-insensitively) and train on all of DATA_DIR, instead of splitting DATA_DIR."),
    normalize: str = typer.Option(
        "imagenet", help="Input normalisation, stored in the checkpoint for inference: imagenet (ImageNet mean and "
        "std) or none (pixels scaled to 0..1 only, as the tutorial's ToTensor)."),
    ema: bool = typer.Option(
        False, help="Keep an exponential moving average of the weights, and validate and save it instead."),
    ema_decay: float = typer.Option(0.999, help="With --ema: the average's decay per step (warmed up from 0.1)."),
    progressive_resize: bool = typer.Option(
        False, help="Train on smaller images first, growing to --image-size by 3/4 of the run."),
    progressive_start: float = typer.Option(
        0.5, help="With --progressive-resize: the first images' side as a share of --image-size."),
    keep_epochs: int = typer.Option(2, help="Epoch checkpoints kept in OUT/epochs (the newest)."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the newest epoch checkpoint in OUT/epochs (same data and options)."),
    out: Path = typer.Option(Path("runs/train"), help="Output folder: model.pt, model.json, metrics.json, "
                             "loss.png, confusion.png, epochs/."),
    queue: bool = typer.Option(
        False, "--queue", help="Do not train here: create a train job and send it to a worker on the train queue."),
    register: bool = typer.Option(True, help="Register the new checkpoint in the results database."),
    progress: bool = typer.Option(True, help="Show progress bars (on stderr)."),
    as_json: Json = False,
) -> None:
    """Train a ResNet tile classifier on an ImageFolder directory (or queue the run with --queue)."""
    from producer.commands.errors import require_ml

    if not queue:  # a queued run trains on a worker host
        require_ml("train")
    from model.config import TrainConfig

    # Library warnings (skipped files, slow precision) reach the user on stderr, one line each.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    config = TrainConfig(
        arch=arch, weights=weights, head=head, freeze=freeze, epochs=epochs, batch_size=batch_size, lr=lr,
        optimizer=optimizer, weight_decay=weight_decay, label_smoothing=label_smoothing, schedule=schedule,
        warmup=warmup, time_budget_minutes=time_budget, val_split=val_split, seed=seed, image_size=image_size,
        augment=augment, device=device or ("auto" if queue else _settings_device()), precision=precision,
        eval_every=eval_every, workers=workers, val_dir=str(val_dir.resolve()) if val_dir else None,
        normalize=normalize, ema=ema, ema_decay=ema_decay, progressive_resize=progressive_resize,
        progressive_start=progressive_start, keep_epochs=keep_epochs,
    )
    if queue:
        if resume:
            raise TileclassError("--resume is for a run here: a queued run that was lost continues by itself "
                                 "when 'tileclass resume JOB' sends it again")
        _queue(config, data_dir, as_json)
    else:
        _train_here(config, data_dir, out, register=register, progress=progress, as_json=as_json, resume=resume)


def _settings_device() -> str:
    from core.settings import get_settings

    return get_settings().device


def _train_here(config: TrainConfig, data_dir: Path, out: Path, *, register: bool, progress: bool,
                as_json: bool, resume: bool) -> None:
    from model.train import fit

    echo = (lambda line: typer.echo(line, err=True)) if as_json else typer.echo
    result = fit(config, data_dir=data_dir, out_dir=out, progress=progress, report=echo, resume=resume)
    summary: dict[str, Any] = {"checkpoint": str(result.checkpoint), "sha256": result.sha256,
                               "val_accuracy": result.metrics["val_accuracy"],
                               "val_loss": result.metrics["val_loss"], "out": str(out), "registered": False}
    if register:
        summary["registered"] = _register(result.checkpoint)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"saved {result.checkpoint} (metrics.json, loss.png and confusion.png in {out})")
    typer.echo(f"model sha256 {result.sha256}" + (" (registered)" if summary["registered"] else ""))


def _register(checkpoint: Path) -> bool:
    from sqlalchemy.exc import SQLAlchemyError

    from core.models.registry import register_checkpoint
    from core.settings import get_settings
    from producer.session import open_session

    try:
        with open_session() as session:
            register_checkpoint(session, checkpoint=checkpoint, settings=get_settings())
    except SQLAlchemyError as exc:
        raise TileclassError(f"saved {checkpoint}, but registering it failed ({exc.__class__.__name__}: "
                             f"{str(exc).splitlines()[0][:200]}); run 'tileclass train' with --no-register") from None
    return True


def _queue(config: TrainConfig, data_dir: Path, as_json: bool) -> None:
    from producer.train_queue import queue_training

    for what, folder in (("data directory", data_dir), ("validation folder", config.val_dir)):
        if folder is not None and not Path(folder).is_dir():
            raise TileclassError(f"{what} {str(folder)!r} does not exist or is not a directory")
    job_id = queue_training(data_dir, asdict(config))
    if as_json:
        typer.echo(json.dumps({"job_id": job_id}))
    else:
        typer.echo(f"queued training job {job_id} (follow it with 'tileclass status {job_id}')")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
