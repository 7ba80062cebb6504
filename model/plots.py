"""Figures: the tutorial's training vs validation loss curves, a confusion matrix, a grid of sample predictions, and
reliability diagrams with their confidence histograms (Guo et al. 2017, figure 1).

Figures are drawn with matplotlib's object API (``matplotlib.figure.Figure``), never pyplot: a figure saved to a
file needs no backend, so drawing one neither picks nor changes the process's backend and keeps no figure open.
matplotlib is imported here, never by the CLI module.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from model.scores import Reliability


def plot_losses(path: Path, *, steps: Sequence[int], train_loss: Sequence[float], val_loss: Sequence[float],
                xlabel: str = "training step") -> None:
    """Training and validation loss against ``steps`` (the tutorial's plot)."""
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.subplots()
    ax.plot(steps, train_loss, label="Training loss", marker="o" if len(steps) < 30 else None)
    ax.plot(steps, val_loss, label="Validation loss", marker="o" if len(steps) < 30 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def plot_confusion(path: Path, *, matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> None:
    """Confusion matrix, rows = true class, columns = predicted, shaded by each row's share."""
    counts = np.asarray(matrix, dtype=np.float64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.6 * len(class_names) + 2)
    fig = Figure(figsize=(size + 1, size), dpi=100)
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (row, col), value in np.ndenumerate(counts):
        ax.text(col, row, f"{int(value)}", ha="center", va="center", fontsize=8,
                color="white" if shares[row, col] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    fig.tight_layout()
    fig.savefig(path)


def plot_samples(path: Path, *, images: Sequence[Any], titles: Sequence[str], empty: str = "nothing to show") -> None:
    """The tutorial's figure: images (HWC arrays) side by side, each titled (e.g. "Forest:True"); titles may
    have several lines. No images: a figure that says ``empty``."""
    count = len(images)
    if count == 0:
        fig = Figure(figsize=(4, 1.5), dpi=100)
        fig.text(0.5, 0.5, empty, ha="center", va="center")
        fig.savefig(path)
        return
    columns = min(count, 5)
    rows = (count + columns - 1) // columns
    lines = max(title.count("\n") + 1 for title in titles)
    width = 2.4 if lines == 1 else 2.9  # several lines of class names need a wider column
    fig = Figure(figsize=(width * columns, (2.3 + 0.2 * lines) * rows), dpi=100)
    for index, (image, title) in enumerate(zip(images, titles, strict=True)):
        axes = fig.add_subplot(rows, columns, index + 1)
        axes.imshow(np.asarray(image))
        axes.set_title(title, fontsize=9 if lines == 1 else 8)
        axes.axis("off")
    fig.tight_layout()
    fig.savefig(path)


def plot_reliability(path: Path, *, panels: Sequence[tuple[str, Reliability]]) -> None:
    """One column per titled set of reliability bins (e.g. before and after the temperature), as Guo et al. 2017
    draw them in their figure 1: above, the share of images in each confidence bin with the mean confidence and
    the accuracy marked; below, each bin's accuracy, the gap to the bin's mean confidence hatched (on the diagonal:
    perfect calibration), and the ECE."""
    fig = Figure(figsize=(4.2 * len(panels), 7.5), dpi=100)
    axes = fig.subplots(2, len(panels), squeeze=False, gridspec_kw={"height_ratios": [1, 2]}, sharex=True)
    for column, (title, bins) in enumerate(panels):
        edges = np.asarray(bins.edges)
        left, width = edges[:-1], np.diff(edges)
        counts = np.asarray(bins.counts, dtype=np.float64)
        total = max(counts.sum(), 1.0)
        accuracy, confidence = np.asarray(bins.accuracy), np.asarray(bins.confidence)
        filled = counts > 0
        top, bottom = axes[0][column], axes[1][column]
        top.bar(left, counts / total, width=width, align="edge", color="#4c72b0", edgecolor="white")
        top.axvline(float((confidence * counts).sum() / total), color="#c44e52", linestyle="--",
                    label="mean confidence")
        top.axvline(float((accuracy * counts).sum() / total), color="black", linestyle="-", label="accuracy")
        top.set_title(title)
        top.set_ylabel("share of images")
        top.legend(frameon=False, fontsize=8, loc="upper left")
        bottom.bar(left[filled], accuracy[filled], width=width[filled], align="edge", color="#4c72b0",
                   edgecolor="#2f4b7c", label="accuracy")
        # Hatched, not filled: where accuracy is above confidence (underconfident) the gap lies over the blue bar.
        bottom.bar(left[filled], confidence[filled] - accuracy[filled], bottom=accuracy[filled],
                   width=width[filled], align="edge", facecolor="none", edgecolor="#c44e52", hatch="///",
                   label="gap to mean confidence")
        bottom.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        bottom.text(0.04, 0.92, f"ECE {bins.ece:.2%}", transform=bottom.transAxes, fontsize=11)
        bottom.set_xlim(0, 1)
        bottom.set_ylim(0, 1)
        bottom.set_xticks(np.linspace(0, 1, 6))
        bottom.set_xlabel("confidence (top probability)")
        bottom.set_ylabel("accuracy")
        bottom.legend(frameon=False, fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
