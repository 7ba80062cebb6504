"""Calibration estimators against the literature's worked examples, and temperature scaling (Guo et al. 2017).

The estimators are pure functions over arrays (model/scores.py); each is checked on an example published with
its inputs and its result, reproduced here by hand as well. The temperature fit (model/calibration.py) is checked
on labels drawn from a known temperature, which it must recover, and must never change an answer.
"""

from __future__ import annotations

import math

import pytest
import torch

from model.calibration import (
    MIN_TEMPERATURE,
    calibrated_softmax,
    fit_summary,
    fit_temperature,
    rescale,
    scores_from,
)
from model.errors import DataError
from model.scores import (
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_bins,
)

# TorchMetrics' documented example of the multiclass top-label calibration error (the docstring of
# ``MulticlassCalibrationError`` / ``multiclass_calibration_error``,
# https://lightning.ai/docs/torchmetrics/stable/classification/calibration_error.html): these four predictions
# with n_bins=3 give ECE (norm 'l1') 0.2000 and MCE (norm 'max') 0.2333.
TORCHMETRICS_PREDS = [[0.25, 0.20, 0.55], [0.55, 0.05, 0.40], [0.10, 0.30, 0.60], [0.90, 0.05, 0.05]]
TORCHMETRICS_TARGET = [0, 1, 2, 0]


def test_ece_reproduces_the_published_torchmetrics_example() -> None:
    """Guo et al. 2017, eq. 3, on TorchMetrics' documented example (see TORCHMETRICS_PREDS).

    By hand: confidences 0.55 (class 2, truth 0: wrong), 0.55 (class 0, truth 1: wrong), 0.60 (class 2: right)
    and 0.90 (class 0: right). Bins (0, 1/3], (1/3, 2/3], (2/3, 1]: the middle one holds three images, mean
    confidence 1.7/3 = 0.5667, accuracy 1/3, gap 0.2333; the top one holds one, confidence 0.9, accuracy 1, gap
    0.1. ECE = 3/4 * 0.2333 + 1/4 * 0.1 = 0.2000; the largest gap (MCE) is 0.2333.
    """
    bins = reliability_bins(TORCHMETRICS_PREDS, TORCHMETRICS_TARGET, n_bins=3)
    assert bins.ece == pytest.approx(0.2000, abs=1e-12)
    assert expected_calibration_error(TORCHMETRICS_PREDS, TORCHMETRICS_TARGET, n_bins=3) == pytest.approx(0.2)
    assert bins.counts == [0, 3, 1]
    assert bins.confidence[1:] == pytest.approx([1.7 / 3, 0.9]) and bins.accuracy[1:] == pytest.approx([1 / 3, 1])
    gaps = [abs(a - c) for a, c, n in zip(bins.accuracy, bins.confidence, bins.counts, strict=True) if n]
    assert max(gaps) == pytest.approx(0.2333, abs=1e-4)
    assert bins.edges == pytest.approx([0, 1 / 3, 2 / 3, 1])


def test_ece_bins_are_open_on_the_left_as_guo_defines_them() -> None:
    """Bin m is ((m-1)/M, m/M] (Guo et al. 2017, section 2): a confidence of exactly 0.6 with M = 5 is in
    (0.4, 0.6], not (0.6, 0.8]; 1.0 is in the last bin. The default is M = 15."""
    probabilities = [[0.6, 0.4], [0.2, 0.8], [1.0, 0.0], [0.4, 0.6]]
    assert reliability_bins(probabilities, [0, 1, 0, 0], n_bins=5).counts == [0, 0, 2, 1, 1]
    assert len(reliability_bins(probabilities, [0, 1, 0, 0]).counts) == 15
    # Perfectly calibrated bins: confidence 0.6 right 3 times in 5.
    five = [[0.6, 0.4]] * 5
    assert expected_calibration_error(five, [0, 0, 0, 1, 1], n_bins=5) == pytest.approx(0.0)
    assert expected_calibration_error(five, [0, 0, 0, 0, 0], n_bins=5) == pytest.approx(0.4)


def test_brier_score_is_brier_1950_summed_over_the_classes() -> None:
    """Brier (1950), Monthly Weather Review 78(1): P = 1/n sum_j sum_i (f_ij - E_ij)^2, between 0 and 2.

    Published examples: scikit-learn's ``brier_score_loss`` documentation gives 0.146... for the three-class
    example below (it does not halve the multi-class sum): (0.04+0.01+0.01 + 0.04+0.09+0.01 + 0.04+0.04+0.16)/3 =
    0.44/3; and 0.0375 for its binary example, the one-class form (f - o)^2, which Brier's sum over both classes
    doubles to 0.075. The glossary of the American Meteorological Society's one-forecast examples (0.7 of rain,
    and it rains: (0.7 - 1)^2 = 0.09) likewise double to 0.18.
    """
    three_class = [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.2, 0.2, 0.6]]  # "eggs", "ham", "spam"
    assert brier_score(three_class, [0, 1, 2]) == pytest.approx(0.44 / 3)
    assert brier_score(three_class, [0, 1, 2]) == pytest.approx(0.1467, abs=1e-4)
    binary = [[1 - p, p] for p in (0.1, 0.9, 0.8, 0.3)]
    assert brier_score(binary, [0, 1, 1, 0]) == pytest.approx(2 * 0.0375)
    assert brier_score([[0.3, 0.7]], [1]) == pytest.approx(2 * 0.09)
    assert brier_score([[0.0, 1.0]], [0]) == pytest.approx(2.0)  # the worst: certain and wrong
    assert brier_score([[0.0, 1.0]], [1]) == 0.0


def test_nll_reproduces_the_scikit_learn_log_loss_example() -> None:
    """The mean negative log-likelihood of the true classes (Guo et al. 2017, section 2). scikit-learn's
    ``log_loss`` documentation: labels spam, ham, ham, spam with probabilities (ham, spam) (.1, .9), (.9, .1),
    (.8, .2), (.35, .65) give 0.21616... = -(ln .9 + ln .9 + ln .8 + ln .65) / 4."""
    probabilities = [[0.1, 0.9], [0.9, 0.1], [0.8, 0.2], [0.35, 0.65]]
    labels = [1, 0, 0, 1]
    assert negative_log_likelihood(probabilities, labels) == pytest.approx(0.21616, abs=1e-5)
    assert negative_log_likelihood(probabilities, labels) == pytest.approx(
        -(2 * math.log(0.9) + math.log(0.8) + math.log(0.65)) / 4)
    # It is the cross-entropy of the logits: the same number torch computes from them.
    logits = torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
    targets = torch.randint(0, 4, (50,), generator=torch.Generator().manual_seed(2))
    assert negative_log_likelihood(torch.softmax(logits.double(), 1), targets) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits.double(), targets)))
    assert math.isfinite(negative_log_likelihood([[1.0, 0.0]], [1]))  # a certain mistake costs a finite amount


def sampled(true_temperature: float, *, count: int = 20000, classes: int = 10,
            seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits, and labels drawn from softmax(logits / true_temperature): data whose calibrating temperature is
    known."""
    generator = torch.Generator().manual_seed(seed)
    logits = 4 * torch.randn(count, classes, generator=generator, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(logits / true_temperature, dim=1), 1, generator=generator).flatten()
    return logits, labels


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_fitting_recovers_the_temperature_the_labels_were_drawn_with(true_temperature: float) -> None:
    logits, labels = sampled(true_temperature)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.04)
    assert fit_temperature(logits, labels) == fitted  # deterministic: the same answer every time
    summary = fit_summary(logits, labels, fitted)
    assert summary["nll_after"] <= summary["nll_before"] + 1e-12 and summary["images"] == len(labels)
    if true_temperature != 1.0:  # then T = 1 is visibly miscalibrated, and the fit repairs it
        assert summary["ece_before"] > 0.05 and summary["ece_after"] < 0.02


def test_the_tutorial_heads_log_probabilities_fit_and_scale_like_logits() -> None:
    """softmax(log softmax(z) / T) = softmax(z / T): the LogSoftmax head needs nothing of its own."""
    logits, labels = sampled(2.0, count=4000)
    log_probabilities = torch.log_softmax(logits, dim=1)
    assert fit_temperature(log_probabilities, labels) == pytest.approx(fit_temperature(logits, labels), rel=1e-6)
    assert torch.allclose(calibrated_softmax(log_probabilities, 2.0), calibrated_softmax(logits, 2.0), atol=1e-6)


def test_a_temperature_changes_no_answer_and_accuracy() -> None:
    logits, labels = sampled(2.0, count=4000)
    answers = logits.argmax(dim=1)
    for temperature in (MIN_TEMPERATURE, 0.3, 1.0, 2.0, 17.0):
        probabilities = calibrated_softmax(logits, temperature)
        assert torch.equal(probabilities.argmax(dim=1), answers)
        assert torch.allclose(probabilities.sum(dim=1), torch.ones(len(labels)), atol=1e-5)
    fitted = calibrated_softmax(logits, fit_temperature(logits, labels))
    assert float((fitted.argmax(1) == labels).float().mean()) == float((answers == labels).float().mean())


def test_probabilities_rescale_to_another_temperature() -> None:
    """What eval reports as "before": the same forward pass's probabilities at T = 1."""
    logits, _ = sampled(1.0, count=500)
    at_two = calibrated_softmax(logits, 2.0)
    assert torch.allclose(rescale(at_two, temperature=2.0, to=1.0), calibrated_softmax(logits, 1.0), atol=1e-5)
    assert torch.allclose(rescale(at_two, temperature=2.0, to=0.5), calibrated_softmax(logits, 0.5), atol=1e-4)
    # scores_from gives logits up to a constant per row, which is all a fit needs.
    _, labels = sampled(2.0, count=500)
    assert fit_temperature(scores_from(at_two, 2.0), labels) == pytest.approx(fit_temperature(logits, labels),
                                                                               rel=1e-4)


def test_the_fit_stays_in_its_bracket_and_refuses_nothing_to_fit_on() -> None:
    separable = torch.tensor([[5.0, 0.0], [0.0, 5.0]] * 10)  # always right: sharper is always likelier
    assert fit_temperature(separable, torch.tensor([0, 1] * 10)) == pytest.approx(MIN_TEMPERATURE, rel=1e-6)
    with pytest.raises(DataError, match="fitting a temperature needs"):
        fit_temperature(torch.empty(0, 3), torch.empty(0, dtype=torch.int64))
    with pytest.raises(DataError, match="fitting a temperature needs"):
        fit_temperature(torch.zeros(4, 3), torch.zeros(3, dtype=torch.int64))
