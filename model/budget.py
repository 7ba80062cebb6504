"""The budget warning: does ``--time-budget`` allow enough epochs at the chosen image size?

A run whose cosine schedule reaches zero after a handful of epochs has shown the network each image only a few
times; on EuroSAT, accuracy kept climbing until about epoch 15 of 23 (docs/BENCHMARKS.md). So before a budgeted
run starts, ``fit`` says how many epochs it expects and, below ``MIN_EPOCHS``, which smaller size would fit.

How the estimate is made (measured, not guessed): a throwaway copy of the network trains ``WARMUP_STEPS`` +
``TIMED_STEPS`` steps of the run's batch size (at most ``PROBE_IMAGES``) of real images of the data set, exactly
as the run will (augmentation, resize, autocast precision, optimizer, frozen layers), and the timed steps give
images per second on this machine at this size. Expected epochs = budget x rate / training images; with
progressive resizing the start size is probed too, and the rate is the schedule's average
(``model.schedule.progressive_rate``). For a smaller size, a ResNet's cost is taken as proportional to the
pixel count (its convolutions are nearly all of its time), which gives a first guess; that guess is then probed
too, and shrunk again if the probe disagrees (small images cost more than their pixels, per-step overheads do not
shrink). The probe runs in a forked random stream, so the run trains exactly as it would without it, and its
seconds are not in the budget.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace

import torch
from torch import nn

from model.config import TrainConfig
from model.loop import make_optimizer, prepare_batch, set_train_mode, training_step
from model.schedule import SIZE_MULTIPLE, progressive_rate, progressive_size

MIN_EPOCHS = 15
PROBE_IMAGES = 64  # images of the data set loaded for the probe; its batches are the run's, up to this many
# Two warm-up steps: the first backward pass at a shape still creates the CPU's kernels (oneDNN primitives), and
# with one warm-up the timed steps ran at about half the rate training then reached (EuroSAT, 64 px, AMD EPYC).
WARMUP_STEPS = 2
TIMED_STEPS = 3
SMALLEST_SIZE = 16
SIZE_PROBES = 3  # probes of smaller sizes at most


@dataclass(frozen=True)
class BudgetEstimate:
    """What a time budget allows: epochs at ``size``, and (when too few) a smaller size that allows enough."""

    budget_minutes: float
    size: int
    train_images: int
    images_per_second: float  # measured at ``size`` (at full size with progressive resizing)
    epochs: float
    target: float = MIN_EPOCHS  # what counts as enough: MIN_EPOCHS, or fewer when --epochs asks for fewer
    smaller_size: int | None = None  # a smaller size that fits, by its probe
    smaller_epochs: float | None = None
    tried_size: int | None = None  # else the smallest size probed, which did not fit either
    tried_epochs: float | None = None

    @property
    def enough(self) -> bool:
        return self.epochs >= self.target

    def minutes_for(self, epochs: float) -> float:
        """The budget that would allow ``epochs`` at ``size``."""
        return self.budget_minutes * epochs / self.epochs if self.epochs > 0 else math.inf

    def describe(self) -> str:
        expected = (f"a {self.budget_minutes:g}-minute budget allows about {self.epochs:.1f} epochs of "
                    f"{self.train_images:,} images at {self.size} px (probe: {self.images_per_second:.0f} "
                    "images/s)")
        if self.enough:
            return expected
        if self.smaller_size:
            advice = f"--image-size {self.smaller_size} would allow about {self.smaller_epochs:.0f}, or"
        elif self.tried_size:
            advice = f"even --image-size {self.tried_size} would allow only {self.tried_epochs:.1f}, but"
        else:
            advice = f"no size down to {SMALLEST_SIZE} px would fit, but"
        wanted = f"{self.target:g}"
        return (f"warning: {expected}, fewer than the {wanted} the schedule needs to settle: {advice} "
                f"--time-budget {math.ceil(self.minutes_for(self.target))} would allow {wanted} at {self.size} px")


def estimate_budget(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, config: TrainConfig,
                    device: torch.device, precision: str, size: int, train_images: int) -> BudgetEstimate:
    """Probe ``model``'s training speed on ``images`` (a sample of the data, uint8, at the storage size) and
    estimate what ``config.time_budget_minutes`` allows (see the module docstring)."""
    assert config.time_budget_minutes is not None
    budget_s = config.time_budget_minutes * 60

    def rate_at(probe_size: int) -> float:
        return measure_rate(model, images, labels, config=config, device=device, precision=precision,
                            size=probe_size)

    def epochs_at(probe_size: int) -> tuple[float, float]:
        rate = rate_at(probe_size)
        if config.progressive_resize:  # the run's average rate: its start size is probed too
            start = progressive_size(0.0, full=probe_size, start_share=config.progressive_start)
            measured = {start: rate_at(start), probe_size: rate} if start < probe_size else {probe_size: rate}
            rate_over_run = progressive_rate(measured, full=probe_size, start_share=config.progressive_start)
            return rate, budget_s * rate_over_run / max(train_images, 1)
        return rate, budget_s * rate / max(train_images, 1)

    rate, epochs = epochs_at(size)
    target = min(MIN_EPOCHS, config.epochs)  # a run asked for 5 epochs needs no more than 5
    estimate = BudgetEstimate(config.time_budget_minutes, size, train_images, rate, epochs, target)
    guess_size, guess_epochs = size, epochs
    for _ in range(SIZE_PROBES if not estimate.enough else 0):
        candidate = int(guess_size * math.sqrt(guess_epochs / target)) // SIZE_MULTIPLE * SIZE_MULTIPLE
        candidate = min(candidate, guess_size - SIZE_MULTIPLE)
        if candidate < SMALLEST_SIZE:
            break
        guess_size, (_, guess_epochs) = candidate, epochs_at(candidate)
        if guess_epochs >= target:
            return replace(estimate, smaller_size=candidate, smaller_epochs=guess_epochs)
        estimate = replace(estimate, tried_size=candidate, tried_epochs=guess_epochs)
    return estimate


def measure_rate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, config: TrainConfig,
                 device: torch.device, precision: str, size: int) -> float:
    """Training images per second of a throwaway copy of ``model`` at ``size``, as the run will train it."""
    probe = copy.deepcopy(model)
    optimizer = make_optimizer(config, probe)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # dropout here must not move the run's random stream
        generator = torch.Generator().manual_seed(config.seed)
        batch_size = min(config.batch_size, len(images))
        started = 0.0
        for step in range(WARMUP_STEPS + TIMED_STEPS):
            if step == WARMUP_STEPS:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                started = time.perf_counter()
            batch = torch.randint(0, len(images), (batch_size,), generator=generator)
            inputs = prepare_batch(images[batch], augmented=config.augment == "overhead", generator=generator,
                                   size=size, device=device)
            set_train_mode(probe, config.freeze)
            loss = training_step(probe, optimizer, inputs, labels[batch].to(device), device=device,
                                 precision=precision, label_smoothing=config.label_smoothing)
            loss.item()  # waits for the device
    return TIMED_STEPS * batch_size / max(time.perf_counter() - started, 1e-9)
