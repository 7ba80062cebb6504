"""Classification metrics from predicted and true class indices: accuracy, per-class precision/recall/F1, confusion."""

from __future__ import annotations

from typing import Any

import torch


def confusion_matrix(targets: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C, C) counts; row = true class, column = predicted class."""
    flat = targets.to(torch.int64) * num_classes + predicted.to(torch.int64)
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def summarize(matrix: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, their macro averages over the classes that occur (support
    above 0) and the confusion matrix, as JSON-ready values.

    A class never predicted has precision 0.0 (not NaN), so the JSON stays valid; so does F1 when both are 0.
    """
    counts = matrix.to(torch.float64)
    correct = counts.diag()
    predicted = counts.sum(dim=0)
    actual = counts.sum(dim=1)
    total = float(counts.sum())
    per_class = {}
    for i, name in enumerate(class_names):
        precision = float(correct[i] / predicted[i]) if predicted[i] > 0 else 0.0
        recall = float(correct[i] / actual[i]) if actual[i] > 0 else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(actual[i])}
    present = [values for values in per_class.values() if values["support"] > 0]
    return {
        "accuracy": float(correct.sum() / total) if total else 0.0,
        "macro_precision": sum(v["precision"] for v in present) / len(present) if present else 0.0,
        "macro_recall": sum(v["recall"] for v in present) / len(present) if present else 0.0,
        "macro_f1": sum(v["f1"] for v in present) / len(present) if present else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix.to(torch.int64).tolist(),
        "class_names": list(class_names),
    }
