"""The training variants bench/train_eurosat.py compares, and how each is measured.

- ``split_folder``: a seeded, stratified train/test split of an ImageFolder as two trees of symbolic links, so
  that every variant trains on the same images (``--val-dir``: all of the training part) and is scored on the
  same held-out ones, with and without test-time augmentation;
- ``run_variant``: ``model.train.fit`` at the time budget, then ``Classifier`` + ``predict_images`` (what
  ``tileclass eval`` runs) on the test part for each TTA view count, with the inference rate;
- ``standin_speed``: training images/s of each variant on EuroSAT patches upscaled to 256 px (the stand-in for
  real map tiles: speed only, the upscaled images carry no more information), timed on the training step that
  ``fit`` runs (``model.loop``), the weight average's update included; progressive resizing is timed at its
  start, middle and full size and its rate over a budget follows from the schedule;
- ``tta_speed``: ``Classifier.predict_tensors`` images/s in the worker's chunks of 16 for each view count.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from model.arch import build_model
from model.checkpoint import CheckpointMeta, save_checkpoint
from model.config import TrainConfig
from model.data import load_labelled, scan_image_folder
from model.ema import weight_average
from model.eval_folder import predict_images, score
from model.loop import make_optimizer, prepare_batch, set_train_mode, training_step
from model.predict import Classifier
from model.schedule import progressive_rate, progressive_size
from model.train import fit
from model.transforms import IMAGENET_MEAN, IMAGENET_STD, Normalized

VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "ema": {"ema": True},
    "progressive": {"progressive_resize": True},
    "ema+progressive": {"ema": True, "progressive_resize": True},
}


def split_folder(source: Path, target: Path, *, classes: int, per_class: int | None, test_share: float,
                 seed: int) -> tuple[Path, Path]:
    """``target/train`` and ``target/test``: links to the images of the first ``classes`` class folders (at most
    ``per_class`` each), ``test_share`` of each class held out."""
    folder = scan_image_folder(source)
    by_class: dict[int, list[Path]] = defaultdict(list)
    for path, label in folder.samples:
        by_class[label].append(path)
    rng = random.Random(seed)
    for label, paths in sorted(by_class.items())[:classes]:
        chosen = sorted(paths)
        rng.shuffle(chosen)
        chosen = chosen[:per_class] if per_class else chosen
        held = max(1, round(len(chosen) * test_share))
        for part, members in (("test", chosen[:held]), ("train", chosen[held:])):
            (target / part / folder.class_names[label]).mkdir(parents=True, exist_ok=True)
            for path in members:
                link = target / part / folder.class_names[label] / path.name
                if not link.exists():
                    link.symlink_to(path.resolve())
    return target / "train", target / "test"


def run_variant(name: str, base: TrainConfig, *, train: Path, test: Path, out: Path, views: list[int],
                report: Any) -> dict[str, Any]:
    """Train one variant at the budget and score its checkpoint on ``test`` with each TTA view count."""
    config = replace(base, **VARIANTS[name], val_dir=str(test))
    started = time.perf_counter()
    result = fit(config, data_dir=train, out_dir=out / name, progress=False, report=report)
    metrics = result.metrics
    row: dict[str, Any] = {
        "variant": name, "epochs": len(metrics["epochs"]), "steps": metrics["steps"],
        "train_images_per_second": metrics["images_per_second"], "val_accuracy": metrics["val_accuracy"],
        "best_epoch": metrics["best_epoch"], "wall_seconds": time.perf_counter() - started, "tta": {}}
    for count in views:
        classifier = Classifier.load(result.checkpoint, device=config.device, tta_views=count)
        data = load_labelled(test, known=classifier.class_names, known_as="the model", size=classifier.image_size,
                             fill=classifier.input_fill)
        began = time.perf_counter()
        probabilities = predict_images(classifier, data.images, batch_size=256)
        seconds = time.perf_counter() - began
        row["tta"][str(count)] = {"accuracy": score(probabilities, data.labels, classifier.class_names)["accuracy"],
                                  "images_per_second": len(data.labels) / seconds}
    return row


def standin_speed(images: torch.Tensor, labels: torch.Tensor, *, size: int, base: TrainConfig, names: list[str],
                  device: torch.device, precision: str, steps: int) -> dict[str, float]:
    """Training images/s of the variants ``names`` at ``size`` (``images``: uint8, already at ``size``)."""
    def rate(config: TrainConfig, at: int) -> float:
        return _timed_steps(images, labels, config=config, device=device, precision=precision, size=at, steps=steps)

    rates: dict[str, float] = {}
    for name in names:
        config = replace(base, **VARIANTS[name])
        if not config.progressive_resize:
            rates[name] = rate(config, size)
            continue
        start = progressive_size(0.0, full=size, start_share=config.progressive_start)
        middle = progressive_size(0.375, full=size, start_share=config.progressive_start)
        measured = {s: rate(config, s) for s in sorted({start, middle, size})}
        rates[name] = progressive_rate(measured, full=size, start_share=config.progressive_start)
    return rates


def tta_speed(*, size: int, classes: int, views: list[int], device: str, batches: int, work: Path,
              chunk: int = 16) -> dict[str, float]:
    """``predict_tensors`` images/s per view count, on a random-weight ResNet18 checkpoint at ``size``."""
    names = tuple(f"class{i}" for i in range(classes))
    path = work / f"random-{size}.pt"
    save_checkpoint(path, model=build_model("resnet18", classes), meta=CheckpointMeta(
        arch="resnet18", class_names=names, image_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD))
    batch = torch.randint(0, 256, (chunk, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    rates = {}
    for count in views:
        classifier = Classifier.load(path, device=device, tta_views=count)
        classifier.predict_tensors(batch)  # warm-up
        began = time.perf_counter()
        for _ in range(batches):
            classifier.predict_tensors(batch)
        rates[str(count)] = batches * chunk / (time.perf_counter() - began)
    return rates


def _timed_steps(images: torch.Tensor, labels: torch.Tensor, *, config: TrainConfig, device: torch.device,
                 precision: str, size: int, steps: int) -> float:
    torch.manual_seed(0)
    model = Normalized(build_model(config.arch, int(labels.max()) + 1), IMAGENET_MEAN, IMAGENET_STD)
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = make_optimizer(config, model)
    average = weight_average(model, decay=config.ema_decay) if config.ema else None
    generator = torch.Generator().manual_seed(0)
    began = 0.0
    for step in range(steps + 1):  # the first step warms up
        if step == 1:
            began = time.perf_counter()
        batch = torch.randint(0, len(images), (config.batch_size,), generator=generator)
        inputs = prepare_batch(images[batch], augmented=config.augment == "overhead", generator=generator,
                               size=size, device=device)
        set_train_mode(model, config.freeze)
        loss = training_step(model, optimizer, inputs, labels[batch].to(device), device=device,
                             precision=precision, label_smoothing=config.label_smoothing)
        if average is not None:
            average.update_parameters(model)
        loss.item()
    return steps * config.batch_size / (time.perf_counter() - began)
