"""Evaluating a loaded classifier on a labelled ImageFolder (``tileclass eval``).

The folder's images are decoded once into the model's input (``model.data.load_labelled`` with the model's fill
pixel: ``model.inputs.model_input``, the worker's own preprocessing; class folders matched to the model's classes
case-insensitively) and classified in batches by ``Classifier.predict_tensors``, exactly as a worker classifies
tiles (precision, int8, test-time augmentation included). From the probabilities:

- ``score``: accuracy, the mean cross-entropy of the true class, per-class precision, recall and F1 with their
  macro averages over the classes present, and the confusion matrix over all the model's classes (row: true
  class, column: predicted), as ``model.scores.summarize`` computes them for training;
- ``worst_mistakes``: the wrong answers given with the highest confidence, the ones no confidence threshold would
  catch, to look at first;
- ``agreement``: how many images get the same class from two precisions of one checkpoint (int8 or bf16 against
  fp32), the number that says whether a faster precision changes answers;
- ``calibration``: how far the confidences are from frequencies (``model.scores``: ECE over 15 bins, NLL, Brier
  score) before the model's temperature (T = 1, the network's own softmax) and after it (what ``predict`` and the
  workers give), from the same forward passes: the "before" probabilities are the "after" ones rescaled to T = 1
  (``model.calibration.rescale``), with their reliability bins for ``reliability.png``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from core.progress import progress_bar
from model.calibration import rescale
from model.predict import Classifier
from model.scores import (
    ECE_BINS,
    Reliability,
    brier_score,
    confusion_matrix,
    negative_log_likelihood,
    reliability_bins,
    summarize,
)


@dataclass(frozen=True)
class Mistake:
    """One wrong answer: the image's index in the evaluated set, its true and predicted class, the confidence."""

    index: int
    true_label: str
    predicted: str
    confidence: float


def predict_images(classifier: Classifier, images: torch.Tensor, *, batch_size: int,
                   progress: bool = False) -> torch.Tensor:
    """Class probabilities (N, C) for uint8 (N, 3, S, S) images at the model's input size, in batches."""
    chunks: list[torch.Tensor] = []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"classifying ({classifier.precision})", total=len(images), status="")
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            chunks.append(classifier.predict_tensors(chunk))
            bar.advance(task, len(chunk))
    return torch.cat(chunks) if chunks else torch.empty(0, len(classifier.class_names))


def score(probabilities: torch.Tensor, labels: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
    """``model.scores.summarize``'s figures plus ``loss``, the mean cross-entropy of the true classes."""
    predicted = probabilities.argmax(dim=1)
    summary = summarize(confusion_matrix(labels, predicted, len(class_names)), class_names)
    return summary | {"loss": negative_log_likelihood(probabilities, labels)}


def worst_mistakes(probabilities: torch.Tensor, labels: torch.Tensor, class_names: list[str], *,
                   count: int) -> list[Mistake]:
    """The ``count`` wrong predictions with the highest confidence, most confident first."""
    confidence, predicted = probabilities.max(dim=1)
    wrong = torch.nonzero(predicted != labels).flatten()
    order = wrong[torch.argsort(confidence[wrong], descending=True, stable=True)][:count]
    return [Mistake(int(i), class_names[int(labels[i])], class_names[int(predicted[i])], float(confidence[i]))
            for i in order]


def agreement(first: torch.Tensor, second: torch.Tensor) -> int:
    """How many rows of two probability tensors have the same most likely class."""
    return int((first.argmax(dim=1) == second.argmax(dim=1)).sum())


@dataclass(frozen=True)
class CalibrationReport:
    """Calibration figures of one set of answers before (T = 1) and after the model's temperature."""

    temperature: float
    before: Reliability
    after: Reliability
    nll: tuple[float, float]
    brier: tuple[float, float]

    @property
    def calibrated(self) -> bool:
        """Whether the model has a temperature of its own (one fitted by training or ``tileclass calibrate``)."""
        return self.temperature != 1.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the temperature, ECE/NLL/Brier before and after, and the reliability bins."""
        return {"temperature": self.temperature, "calibrated": self.calibrated, "bins": len(self.after.counts),
                "before": {"ece": self.before.ece, "nll": self.nll[0], "brier": self.brier[0]},
                "after": {"ece": self.after.ece, "nll": self.nll[1], "brier": self.brier[1]},
                "reliability": {"before": asdict(self.before), "after": asdict(self.after)}}


def calibration_report(probabilities: torch.Tensor, labels: torch.Tensor, *, temperature: float,
                       n_bins: int = ECE_BINS) -> CalibrationReport:
    """ECE, NLL and Brier score of ``probabilities`` (made at the model's ``temperature``) and of the same
    answers at T = 1."""
    before = rescale(probabilities, temperature=temperature, to=1.0) if temperature != 1.0 else probabilities
    return CalibrationReport(
        temperature=temperature,
        before=reliability_bins(before, labels, n_bins=n_bins),
        after=reliability_bins(probabilities, labels, n_bins=n_bins),
        nll=(negative_log_likelihood(before, labels), negative_log_likelihood(probabilities, labels)),
        brier=(brier_score(before, labels), brier_score(probabilities, labels)))
