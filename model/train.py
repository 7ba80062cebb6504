"""Training: ``fit(TrainConfig, data_dir=..., out_dir=...) -> TrainResult``.

``out_dir`` receives ``model.pt`` and its sidecar ``model.json`` (see model/checkpoint.py), ``metrics.json``
(per-epoch losses and accuracy, the periodic evaluations, per-class precision, recall and F1, the confusion
matrix), ``loss.png`` (training vs validation loss, the tutorial's plot), ``confusion.png``, and ``epochs/``, a
checkpoint of the whole run at each epoch's end (model/epochs.py) from which ``fit(..., resume=True)`` continues.

The whole data set is decoded once into a uint8 tensor; batches are augmented on tensors, so two CPU cores spend
their time in the network rather than in PIL (the loop: model/loop.py). Validation uses a seeded stratified split
of ``data_dir``, or all of ``config.val_dir`` (then every image of ``data_dir`` trains). The checkpoint kept is
the one with the lowest validation loss. With a time budget the learning rate warms up, then follows a cosine to
zero exactly when the budget (wall clock of training steps, evaluation excluded) runs out, because accuracy only
settles once the rate has decayed; before it starts, a short probe says how many epochs the budget allows
(model/budget.py). At the end, one temperature is fitted on the validation images' scores (model/calibration.py,
Guo et al. 2017) and kept in the checkpoint, so that its confidences are calibrated probabilities.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from model.arch import build_model
from model.budget import PROBE_IMAGES, BudgetEstimate, estimate_budget
from model.calibration import fit_summary, fit_temperature
from model.checkpoint import CheckpointMeta, save_checkpoint
from model.classes import match_classes
from model.config import TrainConfig
from model.data import ImageFolder, LoadedImages, load_images, native_size, scan_image_folder, stratified_split
from model.device import resolve_device, resolve_precision
from model.epochs import check_continuable, epoch_files, latest_epoch
from model.errors import DataError
from model.evaluate import evaluate
from model.loop import History, TrainLoop
from model.plots import plot_confusion, plot_losses
from model.scores import summarize
from model.transforms import NORMALIZATION_STATS, Normalized

CHECKPOINT_NAME = "model.pt"
QUANTIZATION_IMAGES = 64
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """The saved checkpoint, its sha256, the metrics written to metrics.json, and whether the run was stopped
    before its end because ``should_stop`` said so (its checkpoint is the best state up to then)."""

    checkpoint: Path
    sha256: str
    metrics: dict[str, Any]
    stopped_early: bool = False


def fit(config: TrainConfig, *, data_dir: Path, out_dir: Path, progress: bool = True,
        report: Callable[[str], None] | None = None, resume: bool = False,
        should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train a classifier on the ImageFolder ``data_dir`` and write the outputs to ``out_dir``.

    Args:
        config: hyperparameters.
        data_dir: one sub-folder of images per class.
        out_dir: created if needed.
        progress: draw progress bars (stderr).
        report: receives the tutorial-style lines ("Epoch 1/1.. Step 10.. Train loss: ..."); default: logged.
        resume: continue from the newest epoch checkpoint in ``out_dir/epochs`` if there is one (it must be of
            this run: same options and data); otherwise epoch checkpoints of an earlier run there are deleted.
        should_stop: asked at each epoch's end; True stops the run there, and the best state so far is saved.

    Raises:
        DataError: unusable data or options; DeviceError, CheckpointError: see build_model and resolve_device.
    """
    say = report or log.info
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    folder = scan_image_folder(data_dir)
    val_samples = _validation_samples(config, folder)
    # The network first: a weights download or a bad weights file fails before minutes of image decoding.
    net = build_model(config.arch, len(folder.class_names), weights=config.weights, head=config.head,
                      freeze=config.freeze)
    native = native_size(folder.samples)
    size = config.image_size or native
    mean, std = NORMALIZATION_STATS[config.normalize]
    model = Normalized(net, mean, std).to(device).to(memory_format=torch.channels_last)
    estimate = _budget(config, model, folder, val_samples, device, precision, size, native, say)
    # Store at most the native size: upsampling (e.g. the tutorial's 224 px) happens per batch, saving memory.
    data, train_idx, val_idx = _load(config, folder, val_samples, size=min(size, native), progress=progress)
    say(f"{len(train_idx)} training and {len(val_idx)} validation images, {len(folder.class_names)} classes, "
        f"{size} px, {config.arch} on {device} ({precision})")
    data_info = {"class_names": folder.class_names, "train_images": len(train_idx), "val_images": len(val_idx)}
    out_dir.mkdir(parents=True, exist_ok=True)
    loop = TrainLoop(config, model, data, train_idx, val_idx, device=device, precision=precision, size=size,
                     say=say, progress=progress, out_dir=out_dir, data_info=data_info, should_stop=should_stop)
    _start_or_continue(loop, out_dir, config, data_info, resume=resume, say=say)
    history = loop.run()
    evaluated = loop.evaluated
    evaluated.load_state_dict(loop.best_state)
    final = evaluate(evaluated, data.images, data.labels, val_idx, batch_size=2 * config.batch_size, device=device,
                     precision=precision, size=size)
    summary = summarize(final.confusion(len(folder.class_names)), folder.class_names)
    temperature = fit_temperature(final.scores, final.targets)
    calibration = fit_summary(final.scores, final.targets, temperature)
    metrics = _metrics(history, summary, final.loss, data, folder.ignored, loop) | {
        "budget_estimate": asdict(estimate) if estimate else None, "calibration": calibration}
    meta = CheckpointMeta(arch=config.arch, class_names=tuple(folder.class_names), image_size=size, mean=mean,
                          std=std, head=config.head, train_config=asdict(config), metrics=_summary_metrics(metrics),
                          fill_pixel=data.fill, temperature=temperature)
    checkpoint = out_dir / CHECKPOINT_NAME
    digest = save_checkpoint(checkpoint, model=evaluated, meta=meta,
                             quantization_images=quantization_sample(data, train_idx, seed=config.seed))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _plots(out_dir, history, summary)
    say(f"best epoch {metrics['best_epoch']}: validation loss {final.loss:.3f}, accuracy {summary['accuracy']:.4f}")
    say(f"temperature {temperature:.3f} fitted on the validation images: ECE {calibration['ece_before']:.2%} -> "
        f"{calibration['ece_after']:.2%}, NLL {calibration['nll_before']:.3f} -> {calibration['nll_after']:.3f}")
    return TrainResult(checkpoint, digest, metrics, loop.stopped_early)


def quantization_sample(data: LoadedImages, train_idx: torch.Tensor, *, seed: int,
                        count: int = QUANTIZATION_IMAGES) -> torch.Tensor:
    """Up to ``count`` training images, the classes taking turns, kept in the checkpoint so that int8
    quantization (model/quantize.py) sees the activations of real images of every class."""
    shuffled = train_idx[torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(seed))]
    labels = data.labels[shuffled]
    by_class = [shuffled[labels == label].tolist() for label in labels.unique().tolist()]
    taking_turns = [group[i] for i in range(max(map(len, by_class))) for group in by_class if i < len(group)]
    return data.images[taking_turns[:count]].clone()


def _validation_samples(config: TrainConfig, folder: ImageFolder) -> list[tuple[Path, int]] | None:
    """``config.val_dir``'s images labelled with the training classes (matched case-insensitively), or None."""
    if config.val_dir is None:
        return None
    root = Path(config.val_dir)
    val_folder = scan_image_folder(root, min_classes=1)
    mapping = match_classes(val_folder.class_names, folder.class_names, root=root, known_as="the training data")
    return [(path, mapping[label]) for path, label in val_folder.samples]


def _budget(config: TrainConfig, model: Normalized, folder: ImageFolder,
            val_samples: list[tuple[Path, int]] | None, device: torch.device, precision: str, size: int,
            native: int, say: Callable[[str], None]) -> BudgetEstimate | None:
    """With a time budget: say what it allows, from a probe on a few images spread over the data set."""
    if config.time_budget_minutes is None:
        return None
    labels = [label for _, label in folder.samples]
    train_images = len(labels) if val_samples is not None else len(
        stratified_split(labels, val_fraction=config.val_split, seed=config.seed)[0])
    step = max(1, len(folder.samples) // PROBE_IMAGES)
    sample = load_images(folder.samples[::step][:PROBE_IMAGES], size=min(size, native), workers=config.workers)
    estimate = estimate_budget(model, sample.images, sample.labels, config=config, device=device,
                               precision=precision, size=size, train_images=train_images)
    say(estimate.describe())
    return estimate


def _load(config: TrainConfig, folder: ImageFolder, val_samples: list[tuple[Path, int]] | None, *, size: int,
          progress: bool) -> tuple[LoadedImages, torch.Tensor, torch.Tensor]:
    """The decoded images and the indices of the training and validation ones. The fill of pixels without data is
    the mean pixel of ``data_dir`` (the training data), validation images included when they are split from it."""
    data = load_images(folder.samples, size=size, workers=config.workers, progress=progress)
    missing = set(range(len(folder.class_names))) - set(data.labels.unique().tolist())
    if missing:
        names = ", ".join(folder.class_names[i] for i in sorted(missing))
        raise DataError(f"class folders with no decodable image: {names}")
    if val_samples is None:
        train_idx, val_idx = stratified_split(data.labels, val_fraction=config.val_split, seed=config.seed)
        return data, train_idx, val_idx
    val = load_images(val_samples, size=size, fill=data.fill, workers=config.workers, progress=progress)
    both = LoadedImages(torch.cat([data.images, val.images]), torch.cat([data.labels, val.labels]),
                        data.paths + val.paths, data.skipped + val.skipped, data.fill)
    return both, torch.arange(len(data.labels)), torch.arange(len(data.labels), len(both.labels))


def _start_or_continue(loop: TrainLoop, out_dir: Path, config: TrainConfig, data_info: dict[str, Any], *,
                       resume: bool, say: Callable[[str], None]) -> None:
    found = latest_epoch(out_dir) if resume else None
    if found is None:
        stale = epoch_files(out_dir)
        if stale:  # an earlier run's: left there, its higher numbers would pass for this run's newest
            say(f"removing {len(stale)} epoch checkpoint(s) of an earlier run in {stale[0].parent}")
            for path in stale:
                path.unlink(missing_ok=True)
        return
    path, state = found
    check_continuable(state, path=path, config=config, data=data_info)
    loop.restore(state)
    say(f"continuing from {path}: epoch {loop.epoch} of {config.epochs} done, step {loop.step}, "
        f"{loop.train_seconds:.0f} s trained")


def _metrics(history: History, summary: dict[str, Any], val_loss: float, data: LoadedImages, ignored: list[Path],
             loop: TrainLoop) -> dict[str, Any]:
    seconds = sum(e["train_seconds"] for e in history["epochs"])
    images = sum(e["images_per_second"] * e["train_seconds"] for e in history["epochs"])
    return {
        "val_accuracy": summary["accuracy"], "val_loss": val_loss, "val_macro_f1": summary["macro_f1"],
        "best_epoch": loop.best_epoch, "steps": loop.step, "train_images": len(loop.train_idx),
        "val_images": len(loop.val_idx), "train_seconds": seconds,
        "images_per_second": images / seconds if seconds else 0.0,
        "device": str(loop.device), "precision": loop.precision, "image_size": loop.size,
        "ema": loop.ema is not None, "resumed_from_epoch": loop.resumed_from, "stopped_early": loop.stopped_early,
        "epochs": history["epochs"], "evaluations": history["evaluations"],
        "per_class": summary["per_class"], "class_names": summary["class_names"],
        "confusion_matrix": summary["confusion_matrix"],
        "skipped_files": [{"path": str(p), "reason": r} for p, r in data.skipped[:100]],
        "skipped_count": len(data.skipped), "ignored_files": len(ignored),
    }


def _summary_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few numbers kept in the checkpoint and the registry (the full record is metrics.json)."""
    keys = ("val_accuracy", "val_loss", "best_epoch", "steps", "train_images", "val_images", "image_size")
    return {key: metrics[key] for key in keys}


def _plots(out_dir: Path, history: History, summary: dict[str, Any]) -> None:
    points = history["evaluations"] or history["epochs"]
    plot_losses(out_dir / "loss.png", steps=[int(p["step"]) for p in points],
                train_loss=[p["train_loss"] for p in points], val_loss=[p["val_loss"] for p in points])
    plot_confusion(out_dir / "confusion.png", matrix=summary["confusion_matrix"], class_names=summary["class_names"])
