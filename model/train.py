"""Training: ``fit(TrainConfig, data_dir=..., out_dir=...) -> TrainResult``.

``out_dir`` receives ``model.pt`` and its sidecar ``model.json`` (see model/checkpoint.py), ``metrics.json``
(per-epoch losses and accuracy, the periodic evaluations, per-class precision and recall, the confusion matrix),
``loss.png`` (training vs validation loss, the tutorial's plot) and ``confusion.png``.

The whole data set is decoded once into a uint8 tensor; batches are augmented on tensors, so two CPU cores spend
their time in the network rather than in PIL. The checkpoint kept is the one with the lowest validation loss.
With a time budget the learning rate warms up, then follows a cosine to zero exactly when the budget (wall clock
of training steps, evaluation excluded) runs out, because accuracy only settles once the rate has decayed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from core.progress import progress_bar
from model.arch import build_model
from model.checkpoint import CheckpointMeta, save_checkpoint
from model.config import TrainConfig
from model.data import LoadedImages, load_images, native_size, scan_image_folder, stratified_split
from model.device import autocast, resolve_device, resolve_precision
from model.errors import DataError
from model.evaluate import EvalResult, evaluate
from model.metrics import summarize
from model.plots import plot_confusion, plot_losses
from model.transforms import IMAGENET_MEAN, IMAGENET_STD, Normalized, augment, resize

CHECKPOINT_NAME = "model.pt"
CALIBRATION_IMAGES = 64
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """The saved checkpoint, its sha256, and the metrics written to metrics.json."""

    checkpoint: Path
    sha256: str
    metrics: dict[str, Any]


def fit(config: TrainConfig, *, data_dir: Path, out_dir: Path, progress: bool = True,
        report: Callable[[str], None] | None = None) -> TrainResult:
    """Train a classifier on the ImageFolder ``data_dir`` and write the outputs to ``out_dir``.

    Args:
        config: hyperparameters.
        data_dir: one sub-folder of images per class.
        out_dir: created if needed.
        progress: draw progress bars (stderr).
        report: receives the tutorial-style lines ("Epoch 1/1.. Step 10.. Train loss: ..."); default: logged.

    Raises:
        DataError: unusable data or options; DeviceError, CheckpointError: see build_model and resolve_device.
    """
    say = report or log.info
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    folder = scan_image_folder(data_dir)
    # The network first: a weights download or a bad weights file fails before minutes of image decoding.
    net = build_model(config.arch, len(folder.class_names), weights=config.weights, head=config.head,
                      freeze=config.freeze)
    native = native_size(folder.samples)
    size = config.image_size or native
    # Store at most the native size: upsampling (e.g. the tutorial's 224 px) happens per batch, saving memory.
    data = load_images(folder.samples, size=min(size, native), workers=config.workers, progress=progress)
    missing = set(range(len(folder.class_names))) - set(data.labels.unique().tolist())
    if missing:
        names = ", ".join(folder.class_names[i] for i in sorted(missing))
        raise DataError(f"class folders with no decodable image: {names}")
    train_idx, val_idx = stratified_split(data.labels, val_fraction=config.val_split, seed=config.seed)
    say(f"{len(train_idx)} training and {len(val_idx)} validation images, {len(folder.class_names)} classes, "
        f"{size} px, {config.arch} on {device} ({precision})")
    model = Normalized(net, IMAGENET_MEAN, IMAGENET_STD).to(device).to(memory_format=torch.channels_last)
    loop = _Loop(config, model, data, train_idx, val_idx, device, precision, size, say, progress)
    history = loop.run()
    model.load_state_dict(loop.best_state)
    final = evaluate(model, data.images, data.labels, val_idx, batch_size=2 * config.batch_size, device=device,
                     precision=precision, size=size)
    summary = summarize(final.confusion(len(folder.class_names)), folder.class_names)
    metrics = _metrics(history, summary, final.loss, data, folder.ignored, len(train_idx), loop)
    meta = CheckpointMeta(arch=config.arch, class_names=tuple(folder.class_names), image_size=size,
                          mean=IMAGENET_MEAN, std=IMAGENET_STD, head=config.head, train_config=asdict(config),
                          metrics=_summary_metrics(metrics))
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / CHECKPOINT_NAME
    digest = save_checkpoint(checkpoint, model=model, meta=meta,
                             calibration=calibration_sample(data, train_idx, seed=config.seed))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _plots(out_dir, history, summary)
    say(f"best epoch {metrics['best_epoch']}: validation loss {final.loss:.3f}, accuracy {summary['accuracy']:.4f}")
    return TrainResult(checkpoint, digest, metrics)


def calibration_sample(data: LoadedImages, train_idx: torch.Tensor, *, seed: int,
                       count: int = CALIBRATION_IMAGES) -> torch.Tensor:
    """Up to ``count`` training images, the classes taking turns, kept in the checkpoint so that int8
    quantization (model/quantize.py) sees the activations of real images of every class."""
    shuffled = train_idx[torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(seed))]
    labels = data.labels[shuffled]
    by_class = [shuffled[labels == label].tolist() for label in labels.unique().tolist()]
    taking_turns = [group[i] for i in range(max(map(len, by_class))) for group in by_class if i < len(group)]
    return data.images[taking_turns[:count]].clone()


def lr_factor(done: float, *, schedule: str, warmup: float) -> float:
    """The learning rate's share of its peak when ``done`` (0..1) of the steps or of the time budget has passed.

    ``cosine``: linear warm-up over the first ``warmup`` share, then a half cosine that reaches 0 at done = 1.
    ``constant``: always 1 (the tutorial's Adam).
    """
    if schedule == "constant":
        return 1.0
    if done < warmup:
        return done / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (done - warmup) / (1 - warmup))))


class _Loop:
    """The epoch/step loop with its schedule, periodic evaluation and best-state tracking."""

    def __init__(self, config: TrainConfig, model: Normalized, data: LoadedImages, train_idx: torch.Tensor,
                 val_idx: torch.Tensor, device: torch.device, precision: str, size: int,
                 say: Callable[[str], None], progress: bool) -> None:
        self.config, self.model, self.data = config, model, data
        self.train_idx, self.val_idx = train_idx, val_idx
        self.device, self.precision, self.size, self.say, self.progress = device, precision, size, say, progress
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = (torch.optim.SGD(params, lr=config.lr, momentum=0.9, nesterov=True,
                                          weight_decay=config.weight_decay) if config.optimizer == "sgd"
                          else torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay))
        self.generator = torch.Generator().manual_seed(config.seed)
        self.steps_per_epoch = max(1, len(train_idx) // config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.budget_s = config.time_budget_minutes * 60 if config.time_budget_minutes else None
        self.step, self.train_seconds = 0, 0.0
        self.best_loss, self.best_epoch = math.inf, 0
        self.best_state: dict[str, torch.Tensor] = {}

    def run(self) -> dict[str, list[dict[str, float]]]:
        history: dict[str, list[dict[str, float]]] = {"epochs": [], "evaluations": []}
        with progress_bar(self.progress) as bar:
            for epoch in range(1, self.config.epochs + 1):
                task = bar.add_task(f"epoch {epoch}/{self.config.epochs}", total=self.steps_per_epoch, status="")
                started, seconds_before, images = time.perf_counter(), self.train_seconds, 0
                epoch_loss, epoch_steps, window_loss, window_steps = 0.0, 0, 0.0, 0
                for batch in self._batches():
                    loss = self._train_step(batch)
                    images += len(batch)
                    epoch_loss, epoch_steps = epoch_loss + loss, epoch_steps + 1
                    window_loss, window_steps = window_loss + loss, window_steps + 1
                    bar.update(task, advance=1, status=f"loss {loss:.3f}")
                    if self.config.eval_every and self.step % self.config.eval_every == 0:
                        result = self._evaluate()
                        history["evaluations"].append({"epoch": epoch, "step": self.step,
                                                       "train_loss": window_loss / window_steps,
                                                       "val_loss": result.loss, "val_accuracy": result.accuracy})
                        self.say(f"Epoch {epoch}/{self.config.epochs}.. Step {self.step}.. "
                                 f"Train loss: {window_loss / window_steps:.3f}.. "
                                 f"Validation loss: {result.loss:.3f}.. Validation accuracy: {result.accuracy:.3f}")
                        window_loss, window_steps = 0.0, 0
                    if self._out_of_time():
                        break
                bar.remove_task(task)
                if epoch_steps:
                    history["epochs"].append(self._end_epoch(epoch, epoch_loss / epoch_steps, images,
                                                             self.train_seconds - seconds_before, started))
                if self._out_of_time():
                    self.say(f"time budget of {self.config.time_budget_minutes} min reached after {self.step} steps")
                    break
        return history

    def _batches(self) -> list[torch.Tensor]:
        order = self.train_idx[torch.randperm(len(self.train_idx), generator=self.generator)]
        # Drop the ragged last batch: a batch of one breaks BatchNorm, and equal batches keep steps comparable.
        usable = max(len(order) // self.config.batch_size, 1) * self.config.batch_size
        return list(order[:usable].split(self.config.batch_size))

    def _train_step(self, batch: torch.Tensor) -> float:
        started = time.perf_counter()
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * self._lr_factor()
        images = self.data.images[batch]
        if self.config.augment == "overhead":
            images = augment(images, self.generator)
        images = resize(images, self.size).to(self.device, non_blocking=True)
        images = images.contiguous(memory_format=torch.channels_last)
        targets = self.data.labels[batch].to(self.device, non_blocking=True)
        self._train_mode()
        with autocast(self.device, self.precision):
            output = self.model(images)
        loss = F.cross_entropy(output.float(), targets, label_smoothing=self.config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        value = float(loss.item())
        self.step += 1
        self.train_seconds += time.perf_counter() - started
        if not math.isfinite(value):
            raise DataError(f"training diverged (loss {value}) at step {self.step}: lower --lr (now {self.config.lr})")
        return value

    def _lr_factor(self) -> float:
        done = (self.step + 1) / self.total_steps
        if self.budget_s:
            done = max(done, self.train_seconds / self.budget_s)
        return lr_factor(done, schedule=self.config.schedule, warmup=self.config.warmup)

    def _out_of_time(self) -> bool:
        return self.budget_s is not None and self.train_seconds >= self.budget_s

    def _train_mode(self) -> None:
        self.model.train()
        if self.config.freeze == "backbone":
            # A frozen backbone keeps its BatchNorm statistics too; only the head trains (and drops out).
            self.model.eval()
            self.model.net.fc.train()  # type: ignore[union-attr]

    def _evaluate(self) -> EvalResult:
        return evaluate(self.model, self.data.images, self.data.labels, self.val_idx,
                        batch_size=2 * self.config.batch_size, device=self.device, precision=self.precision,
                        size=self.size)

    def _end_epoch(self, epoch: int, train_loss: float, images: int, train_seconds: float,
                   started: float) -> dict[str, float]:
        result = self._evaluate()
        if result.loss < self.best_loss or not self.best_state:
            self.best_loss, self.best_epoch = result.loss, epoch
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        lr = self.config.lr * self._lr_factor()
        self.say(f"Epoch {epoch}/{self.config.epochs}.. Train loss: {train_loss:.3f}.. "
                 f"Validation loss: {result.loss:.3f}.. Validation accuracy: {result.accuracy:.3f}.. "
                 f"{images / max(train_seconds, 1e-9):.0f} images/s")
        return {"epoch": epoch, "step": self.step, "train_loss": train_loss, "val_loss": result.loss,
                "val_accuracy": result.accuracy, "lr": lr, "train_seconds": train_seconds,
                "epoch_seconds": time.perf_counter() - started, "images_per_second": images / max(train_seconds, 1e-9)}


def _metrics(history: dict[str, list[dict[str, float]]], summary: dict[str, Any], val_loss: float,
             data: LoadedImages, ignored: list[Path], train_images: int, loop: _Loop) -> dict[str, Any]:
    seconds = sum(e["train_seconds"] for e in history["epochs"])
    images = sum(e["images_per_second"] * e["train_seconds"] for e in history["epochs"])
    return {
        "val_accuracy": summary["accuracy"], "val_loss": val_loss, "best_epoch": loop.best_epoch,
        "steps": loop.step, "train_images": train_images, "val_images": len(loop.val_idx),
        "train_seconds": seconds, "images_per_second": images / seconds if seconds else 0.0,
        "device": str(loop.device), "precision": loop.precision, "image_size": loop.size,
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


def _plots(out_dir: Path, history: dict[str, list[dict[str, float]]], summary: dict[str, Any]) -> None:
    points = history["evaluations"] or history["epochs"]
    plot_losses(out_dir / "loss.png", steps=[int(p["step"]) for p in points],
                train_loss=[p["train_loss"] for p in points], val_loss=[p["val_loss"] for p in points])
    plot_confusion(out_dir / "confusion.png", matrix=summary["confusion_matrix"], class_names=summary["class_names"])

