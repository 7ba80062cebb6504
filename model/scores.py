"""Classification scores: pure functions over arrays (torch tensors or anything ``torch.as_tensor`` takes).

- From predicted and true class indices: accuracy, per-class precision/recall/F1, the confusion matrix.
- From class probabilities (N, C) and true class indices (N,), how far confidences are from frequencies: the
  expected calibration error with its reliability bins (Guo et al. 2017), the negative log-likelihood and the
  Brier score (Brier 1950). ``model.calibration`` fits the temperature these are reported before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

ECE_BINS = 15  # Guo et al. 2017's M (section 2), and what temperature-scaling results are usually reported with
# Probabilities below this count as this in the NLL, so that one confident mistake stays finite (scikit-learn's
# log_loss clips likewise).
NLL_FLOOR = 1e-12


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


@dataclass(frozen=True)
class Reliability:
    """Equal-width confidence bins (Guo et al. 2017, section 2): bin m holds the images whose confidence (top
    probability) is in ((m-1)/M, m/M]. Per bin: its edges, how many images, their mean confidence and the share of
    them answered right (both 0.0 for an empty bin). ``ece`` is the expected calibration error over these bins."""

    edges: list[float]
    counts: list[int]
    confidence: list[float]
    accuracy: list[float]
    ece: float


def reliability_bins(probabilities: Any, labels: Any, *, n_bins: int = ECE_BINS) -> Reliability:
    """The reliability diagram's bins and the expected calibration error (ECE).

    Guo, Pleiss, Sun and Weinberger, "On calibration of modern neural networks", ICML 2017, section 2, after
    Naeini, Cooper and Hauskrecht, AAAI 2015: with B_m the images whose confidence falls in bin m of M,

        ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|

    where acc is the share of B_m whose top class is the true one and conf their mean top probability.

    Args:
        probabilities: (N, C) class probabilities.
        labels: (N,) true class indices.
        n_bins: M, the number of equal-width bins over [0, 1].
    """
    probabilities = torch.as_tensor(probabilities, dtype=torch.float64)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    confidence, predicted = probabilities.max(dim=1)
    correct = (predicted == labels).to(torch.float64)
    edges = torch.arange(n_bins + 1, dtype=torch.float64) / n_bins  # m/M correctly rounded: 3/5 is 0.6
    # bucketize(right=False) gives i with edges[i-1] < x <= edges[i], i.e. bins open on the left; a confidence of
    # exactly 0 (impossible for a softmax) joins the first bin.
    index = torch.bucketize(confidence, edges[1:-1], right=False).clamp(0, n_bins - 1)
    counts = torch.bincount(index, minlength=n_bins).to(torch.float64)
    sums = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, confidence)
    hits = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, index, correct)
    filled = counts.clamp_min(1)
    mean_confidence, accuracy = sums / filled, hits / filled
    total = max(len(labels), 1)
    ece = float((counts / total * (accuracy - mean_confidence).abs()).sum())
    return Reliability(edges.tolist(), [int(c) for c in counts.tolist()], mean_confidence.tolist(),
                       accuracy.tolist(), ece)


def expected_calibration_error(probabilities: Any, labels: Any, *, n_bins: int = ECE_BINS) -> float:
    """ECE over ``n_bins`` equal-width confidence bins (Guo et al. 2017, eq. 3); see ``reliability_bins``."""
    return reliability_bins(probabilities, labels, n_bins=n_bins).ece


def negative_log_likelihood(probabilities: Any, labels: Any) -> float:
    """Mean negative log-probability of the true classes (the cross-entropy; Guo et al. 2017, section 2), with
    probabilities below ``NLL_FLOOR`` counted as ``NLL_FLOOR``. 0.0 for no images."""
    probabilities = torch.as_tensor(probabilities, dtype=torch.float64)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if len(labels) == 0:
        return 0.0
    true = probabilities.gather(1, labels.view(-1, 1)).clamp_min(NLL_FLOOR)
    return float(-true.log().mean())


def brier_score(probabilities: Any, labels: Any) -> float:
    """The Brier score in Brier's own multi-class form: the mean over images of the squared distance between the
    probability vector and the one-hot truth, summed over all classes.

    Brier, "Verification of forecasts expressed in terms of probability", Monthly Weather Review 78(1), 1950:
    P = 1/n sum_j sum_i (f_ij - E_ij)^2 over n occasions and r classes, between 0 (perfect) and 2. With two
    classes it is twice the binary score (f - o)^2 that scikit-learn's ``brier_score_loss`` reports by default.
    0.0 for no images.
    """
    probabilities = torch.as_tensor(probabilities, dtype=torch.float64)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if len(labels) == 0:
        return 0.0
    truth = torch.nn.functional.one_hot(labels, probabilities.shape[1]).to(torch.float64)
    return float(((probabilities - truth) ** 2).sum(dim=1).mean())
