"""Temperature scaling: one number per model that makes its confidences mean what they say.

Guo, Pleiss, Sun and Weinberger, "On calibration of modern neural networks", ICML 2017, section 4.2 ("Temperature
scaling"): with a network's logits z, the calibrated probabilities are ``softmax(z / T)``, where the temperature
T > 0 minimises the negative log-likelihood (NLL) of a validation set's true classes. Dividing by T changes no
argmax, so the answers and the accuracy stay exactly what they were; T > 1 softens an overconfident network, T < 1
sharpens an underconfident one (label smoothing, which the default recipe trains with, tends to make those).

The "tutorial" head ends in LogSoftmax, so it returns log-probabilities ``log softmax(z) = z - logsumexp(z)``
instead of logits. They differ from the logits by one constant per image, and a softmax ignores such a constant:
``softmax(log softmax(z) / T) = softmax(z / T - logsumexp(z) / T) = softmax(z / T)``. Everything here therefore
takes either, and calls both "scores". For the same reason probabilities made at one temperature can be turned
into those of another (``rescale``): ``T1 * log softmax(z / T1)`` is z up to such a constant.

The fit is deterministic: NLL(T) is convex in 1/T (a log-sum-exp of functions linear in 1/T, minus one linear in
1/T), so it has a single minimum, which a golden-section search over log T finds within a fixed bracket
[``MIN_TEMPERATURE``, ``MAX_TEMPERATURE``] in a fixed number of steps: no random start, no learning rate, the same
answer on every machine. Computed in float64 on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from model.errors import DataError

MIN_TEMPERATURE = 0.01
MAX_TEMPERATURE = 100.0
_GOLDEN_STEPS = 60  # the bracket's width (9.2 in log T) shrinks by 0.618 a step: to 3e-12 after 60
_INVERSE_GOLDEN = (math.sqrt(5) - 1) / 2
_NO_CHANCE = -1e6


def calibrated_softmax(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """float32 probabilities ``softmax(scores / temperature)`` over dim 1 (Guo et al. 2017, section 4.2).

    The inference module (``model.predict``) calls this, so every caller of a classifier gets calibrated
    probabilities; ``scores`` are logits or log-probabilities (see the module docstring).
    """
    return torch.softmax(scores.float() / temperature, dim=1)


def fit_temperature(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature T that minimises the mean NLL of ``softmax(scores / T)`` at the true ``labels``.

    Args:
        scores: (N, C) logits or log-probabilities of a validation set the network did not train on.
        labels: (N,) true class indices.

    Raises:
        DataError: no images, or scores and labels that do not match.
    """
    scores = torch.as_tensor(scores, dtype=torch.float64).detach().cpu()
    labels = torch.as_tensor(labels, dtype=torch.int64).detach().cpu()
    if scores.dim() != 2 or labels.shape != (scores.shape[0],) or scores.shape[0] == 0:
        raise DataError(f"fitting a temperature needs (N, C) scores and N labels with N > 0, got scores "
                        f"{tuple(scores.shape)} and labels {tuple(labels.shape)}")
    # A score of -inf (no chance at all) becomes a finite "no chance", so that a true class scored so costs a large
    # NLL at every temperature instead of an infinite one at all of them, which would leave nothing to minimise.
    scores = scores.clamp_min(_NO_CHANCE)

    def nll(log_temperature: float) -> float:
        return float(F.cross_entropy(scores / math.exp(log_temperature), labels))

    low, high = math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)
    left, right = high - _INVERSE_GOLDEN * (high - low), low + _INVERSE_GOLDEN * (high - low)
    left_nll, right_nll = nll(left), nll(right)
    for _ in range(_GOLDEN_STEPS):
        if left_nll <= right_nll:  # the minimum is not right of ``right``
            high, right, right_nll = right, left, left_nll
            left = high - _INVERSE_GOLDEN * (high - low)
            left_nll = nll(left)
        else:
            low, left, left_nll = left, right, right_nll
            right = low + _INVERSE_GOLDEN * (high - low)
            right_nll = nll(right)
    return math.exp((low + high) / 2)


def scores_from(probabilities: torch.Tensor, temperature: float) -> torch.Tensor:
    """Scores (logits up to one constant per row) that give ``probabilities`` at ``temperature``: ``T log p``.

    A probability that underflowed to 0 in float32 becomes the smallest float32's logarithm instead of -inf, so
    that a true class the model gave no chance costs a large, finite NLL.
    """
    probabilities = torch.as_tensor(probabilities, dtype=torch.float64)
    tiny = torch.finfo(torch.float32).tiny
    return probabilities.clamp_min(tiny).log() * temperature


def rescale(probabilities: torch.Tensor, *, temperature: float, to: float = 1.0) -> torch.Tensor:
    """Probabilities that were made at ``temperature``, as they are at temperature ``to`` (float32).

    Exact up to float rounding for one forward pass per image; for probabilities averaged over test-time
    augmentation views it rescales the average (the views' own scores are gone by then).
    """
    return calibrated_softmax(scores_from(probabilities, temperature), to)


def fit_summary(scores: torch.Tensor, labels: torch.Tensor, temperature: float) -> dict[str, float | int]:
    """What a fitted ``temperature`` does to the images it was fitted on: NLL and ECE (``model.scores``) before
    (T = 1) and after, JSON-ready."""
    from model.scores import expected_calibration_error, negative_log_likelihood

    scores = torch.as_tensor(scores, dtype=torch.float64).detach().cpu().clamp_min(_NO_CHANCE)
    labels = torch.as_tensor(labels, dtype=torch.int64).detach().cpu()
    before, after = torch.softmax(scores, dim=1), torch.softmax(scores / temperature, dim=1)
    return {"temperature": temperature, "images": len(labels),
            "nll_before": negative_log_likelihood(before, labels), "nll_after": negative_log_likelihood(after, labels),
            "ece_before": expected_calibration_error(before, labels),
            "ece_after": expected_calibration_error(after, labels)}


def write_calibrated(source: Path, target: Path, *, temperature: float, record: dict[str, Any],
                     data: bytes | None = None) -> str:
    """Write ``target``: the checkpoint ``source`` (read from ``data``, its bytes, when given) with ``temperature``
    as its own and ``record`` (how it was fitted) in its metrics, everything else it holds kept as it is (weights,
    preprocessing, quantization images, training record). ``source`` is only read. Returns the new file's sha256.
    """
    from model.checkpoint import read_checkpoint, write_checkpoint

    checkpoint = read_checkpoint(source, data)
    meta = replace(checkpoint.meta, temperature=temperature, metrics=checkpoint.meta.metrics | {"calibration": record})
    return write_checkpoint(target, state_dict=checkpoint.state_dict, meta=meta,
                            quantization_images=checkpoint.quantization_images)
