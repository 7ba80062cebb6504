"""The epoch/step loop behind ``model.train.fit``.

Each step sets the learning rate from the schedule, takes a batch of in-memory uint8 images, augments it on
tensors, resizes it (progressive resizing: smaller early on), and runs forward and backward under autocast. With
``ema`` a moving average of the weights is updated after each step, and it is the average that is validated and
kept. Each epoch ends with a validation pass, the best state so far (lowest validation loss), and an epoch
checkpoint (model/epochs.py) from which ``restore`` continues an interrupted run exactly: weights, optimizer,
weight average, step, training time and random streams. The loop stops early when the time budget runs out, or
at an epoch's end when ``should_stop`` says so (a cancelled job).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.progress import progress_bar
from model.config import TrainConfig
from model.data import LoadedImages
from model.device import autocast
from model.ema import weight_average
from model.epochs import save_epoch
from model.errors import DataError
from model.evaluate import EvalResult, evaluate
from model.schedule import lr_factor, progressive_size
from model.transforms import augment, resize

History = dict[str, list[dict[str, float]]]


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD Nesterov (momentum 0.9) or Adam over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def set_train_mode(model: nn.Module, freeze: str) -> None:
    """Training mode; a frozen backbone keeps its BatchNorm statistics too, so only the head trains (and drops
    out)."""
    model.train()
    if freeze == "backbone":
        model.eval()
        model.net.fc.train()  # type: ignore[union-attr]


def prepare_batch(images: torch.Tensor, *, augmented: bool, generator: torch.Generator, size: int,
                  device: torch.device) -> torch.Tensor:
    """uint8 images, augmented (or not), resized to ``size`` and on ``device`` in channels_last."""
    if augmented:
        images = augment(images, generator)
    images = resize(images, size).to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last)


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, targets: torch.Tensor,
                  *, device: torch.device, precision: str, label_smoothing: float) -> torch.Tensor:
    """One forward, backward and optimizer step; returns the loss (still on the device)."""
    with autocast(device, precision):
        output = model(images)
    loss = F.cross_entropy(output.float(), targets, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


class TrainLoop:
    """The state of one training run and the loop that advances it; ``run()`` returns the history."""

    def __init__(self, config: TrainConfig, model: nn.Module, data: LoadedImages, train_idx: torch.Tensor,
                 val_idx: torch.Tensor, *, device: torch.device, precision: str, size: int,
                 say: Callable[[str], None], progress: bool, out_dir: Path, data_info: dict[str, Any],
                 should_stop: Callable[[], bool] | None = None) -> None:
        self.config, self.model, self.data = config, model, data
        self.train_idx, self.val_idx = train_idx, val_idx
        self.device, self.precision, self.size, self.say, self.progress = device, precision, size, say, progress
        self.out_dir, self.data_info = out_dir, data_info
        self.should_stop = should_stop or (lambda: False)
        self.optimizer = make_optimizer(config, model)
        self.ema = weight_average(model, decay=config.ema_decay) if config.ema else None
        self.generator = torch.Generator().manual_seed(config.seed)
        self.steps_per_epoch = max(1, len(train_idx) // config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.budget_s = config.time_budget_minutes * 60 if config.time_budget_minutes else None
        self.epoch, self.step, self.train_seconds = 0, 0, 0.0
        self.best_loss, self.best_epoch = math.inf, 0
        self.best_state: dict[str, torch.Tensor] = {}
        self.history: History = {"epochs": [], "evaluations": []}
        self.resumed_from: int | None = None
        self.stopped_early = False  # should_stop said so

    @property
    def evaluated(self) -> nn.Module:
        """What is validated and saved: the weight average with ``ema``, else the trained weights."""
        return self.ema.module if self.ema is not None else self.model

    def run(self) -> History:
        with progress_bar(self.progress) as bar:
            for epoch in range(self.epoch + 1, self.config.epochs + 1):
                if self._out_of_time():  # a continued run whose budget was already spent
                    break
                task = bar.add_task(f"epoch {epoch}/{self.config.epochs}", total=self.steps_per_epoch, status="")

                def advance(loss: float, task: Any = task) -> None:
                    bar.update(task, advance=1, status=f"loss {loss:.3f}")

                self._run_epoch(epoch, advance)
                bar.remove_task(task)
                save_epoch(self.out_dir, self.state(), keep=self.config.keep_epochs)
                if self._out_of_time():
                    self.say(f"time budget of {self.config.time_budget_minutes} min reached after {self.step} steps")
                    break
                if self.should_stop():
                    self.stopped_early = True
                    self.say(f"stopped after epoch {epoch} of {self.config.epochs}, as asked")
                    break
        return self.history

    def _run_epoch(self, epoch: int, advance: Callable[[float], None]) -> None:
        started, seconds_before, images = time.perf_counter(), self.train_seconds, 0
        epoch_loss, epoch_steps, window_loss, window_steps = 0.0, 0, 0.0, 0
        for batch in self._batches():
            loss = self._train_step(batch)
            images += len(batch)
            epoch_loss, epoch_steps = epoch_loss + loss, epoch_steps + 1
            window_loss, window_steps = window_loss + loss, window_steps + 1
            advance(loss)
            if self.config.eval_every and self.step % self.config.eval_every == 0:
                result = self._evaluate()
                self.history["evaluations"].append({"epoch": epoch, "step": self.step,
                                                    "train_loss": window_loss / window_steps,
                                                    "val_loss": result.loss, "val_accuracy": result.accuracy})
                self.say(f"Epoch {epoch}/{self.config.epochs}.. Step {self.step}.. "
                         f"Train loss: {window_loss / window_steps:.3f}.. "
                         f"Validation loss: {result.loss:.3f}.. Validation accuracy: {result.accuracy:.3f}")
                window_loss, window_steps = 0.0, 0
            if self._out_of_time():
                break
        self.epoch = epoch
        self.history["epochs"].append(self._end_epoch(epoch, epoch_loss / max(epoch_steps, 1), images,
                                                      self.train_seconds - seconds_before, started))

    def _batches(self) -> list[torch.Tensor]:
        order = self.train_idx[torch.randperm(len(self.train_idx), generator=self.generator)]
        # Drop the ragged last batch: a batch of one breaks BatchNorm, and equal batches keep steps comparable.
        usable = max(len(order) // self.config.batch_size, 1) * self.config.batch_size
        return list(order[:usable].split(self.config.batch_size))

    def _train_step(self, batch: torch.Tensor) -> float:
        started = time.perf_counter()
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * self._lr_factor()
        size = (progressive_size(self._done(), full=self.size, start_share=self.config.progressive_start)
                if self.config.progressive_resize else self.size)
        images = prepare_batch(self.data.images[batch], augmented=self.config.augment == "overhead",
                               generator=self.generator, size=size, device=self.device)
        targets = self.data.labels[batch].to(self.device, non_blocking=True)
        set_train_mode(self.model, self.config.freeze)
        loss = training_step(self.model, self.optimizer, images, targets, device=self.device,
                             precision=self.precision, label_smoothing=self.config.label_smoothing)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        value = float(loss.item())
        self.step += 1
        self.train_seconds += time.perf_counter() - started
        if not math.isfinite(value):
            raise DataError(f"training diverged (loss {value}) at step {self.step}: lower --lr (now {self.config.lr})")
        return value

    def _done(self) -> float:
        done = self.step / self.total_steps
        return max(done, self.train_seconds / self.budget_s) if self.budget_s else done

    def _lr_factor(self) -> float:
        done = (self.step + 1) / self.total_steps
        if self.budget_s:
            done = max(done, self.train_seconds / self.budget_s)
        return lr_factor(done, schedule=self.config.schedule, warmup=self.config.warmup)

    def _out_of_time(self) -> bool:
        return self.budget_s is not None and self.train_seconds >= self.budget_s

    def _evaluate(self) -> EvalResult:
        return evaluate(self.evaluated, self.data.images, self.data.labels, self.val_idx,
                        batch_size=2 * self.config.batch_size, device=self.device, precision=self.precision,
                        size=self.size)

    def _end_epoch(self, epoch: int, train_loss: float, images: int, train_seconds: float,
                   started: float) -> dict[str, float]:
        result = self._evaluate()
        if result.loss < self.best_loss or not self.best_state:
            self.best_loss, self.best_epoch = result.loss, epoch
            self.best_state = {k: v.detach().clone() for k, v in self.evaluated.state_dict().items()}
        lr = self.config.lr * self._lr_factor()
        self.say(f"Epoch {epoch}/{self.config.epochs}.. Train loss: {train_loss:.3f}.. "
                 f"Validation loss: {result.loss:.3f}.. Validation accuracy: {result.accuracy:.3f}.. "
                 f"{images / max(train_seconds, 1e-9):.0f} images/s")
        return {"epoch": epoch, "step": self.step, "train_loss": train_loss, "val_loss": result.loss,
                "val_accuracy": result.accuracy, "lr": lr, "train_seconds": train_seconds,
                "epoch_seconds": time.perf_counter() - started, "images_per_second": images / max(train_seconds, 1e-9)}

    def state(self) -> dict[str, Any]:
        """Everything ``restore`` needs to continue this run (plain types and tensors: see model/epochs.py)."""
        return {"epoch": self.epoch, "step": self.step, "train_seconds": self.train_seconds,
                "config": asdict(self.config), "data": self.data_info, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "rng": {"augment": self.generator.get_state(), "torch": torch.get_rng_state()},
                "best": {"epoch": self.best_epoch, "loss": self.best_loss, "state": self.best_state},
                "history": self.history}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from an epoch checkpoint's ``state`` (checked by ``model.epochs.check_continuable``)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.generator.set_state(state["rng"]["augment"])
        torch.set_rng_state(state["rng"]["torch"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.train_seconds = float(state["train_seconds"])
        best = state["best"]
        self.best_epoch, self.best_loss = int(best["epoch"]), float(best["loss"])
        self.best_state = {k: v.to(self.device) for k, v in best["state"].items()}
        self.history = {"epochs": list(state["history"]["epochs"]),
                        "evaluations": list(state["history"]["evaluations"])}
        self.resumed_from = self.epoch
