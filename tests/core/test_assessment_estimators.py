"""The estimators' behaviour beyond the papers' examples: per-unit areas, classes with no stratum or never seen,
and the input they refuse (each with a one-line AssessmentError)."""

from __future__ import annotations

import math

import pytest

from core.assessment import AssessmentError
from core.assessment.estimators import SampleUnit, estimate, estimate_from_counts


def test_units_are_weighted_by_their_area() -> None:
    # Stratum "a" (10 km²): a 3 km² unit that is "a" and a 1 km² unit that is "b"; stratum "b" (10 km²): two "b".
    units = [SampleUnit("a", "a", 3.0), SampleUnit("a", "b", 1.0), SampleUnit("b", "b", 1.0), SampleUnit("b", "b", 1.0)]
    result = estimate(units, {"a": 10.0, "b": 10.0})
    assert result.of("a").area == pytest.approx(7.5)  # 10 x 3/4, where counting units would give 10 x 1/2
    assert result.of("b").area == pytest.approx(12.5)
    assert result.of("a").users_accuracy == pytest.approx(0.75)
    # By hand: residuals a_u (z_u - R) = 3 x 0.25 and 1 x -0.75; V = (0.5625 + 0.5625) / (2 x 1 x 2^2) = 0.140625.
    assert result.of("a").area_ci95 == pytest.approx(1.96 * 10 * math.sqrt(0.140625))
    assert result.of("a").users_ci95 == pytest.approx(1.96 * math.sqrt(0.140625))
    assert result.overall_accuracy == pytest.approx(0.5 * 0.75 + 0.5 * 1.0)
    assert result.counts == ((1, 1), (0, 2))
    assert result.proportions == ((pytest.approx(0.375), pytest.approx(0.125)), (0.0, pytest.approx(0.5)))


def test_a_reference_class_without_a_stratum() -> None:
    # "cloud" is no map class: it still gets an area; its user's accuracy is undefined and its producer's is 0.
    units = [SampleUnit("a", "a"), SampleUnit("a", "cloud"), SampleUnit("b", "b"), SampleUnit("b", "b")]
    result = estimate(units, {"a": 4.0, "b": 6.0})
    assert result.classes == ("a", "b", "cloud")
    cloud = result.of("cloud")
    assert (cloud.mapped_area, cloud.area, cloud.users_accuracy, cloud.producers_accuracy) == (0.0, 2.0, None, 0.0)
    assert cloud.producers_ci95 == 0.0
    assert cloud.area_ci95 == pytest.approx(1.96 * 4.0 * math.sqrt(0.25 / 1))
    assert sum(c.area for c in result.estimates) == pytest.approx(10.0)
    assert result.as_dict()["classes"]["cloud"]["users_accuracy"] is None


def test_a_class_nobody_saw() -> None:
    # "b" is mapped but never the reference: area 0 ± 0 and an undefined producer's accuracy.
    result = estimate_from_counts({"a": {"a": 5}, "b": {"a": 2}}, {"a": 3.0, "b": 1.0})
    b = result.of("b")
    got = (b.area, b.area_ci95, b.producers_accuracy, b.producers_ci95, b.users_accuracy)
    assert got == (0.0, 0.0, None, None, 0.0)
    assert result.of("a").area == pytest.approx(4.0)


def test_a_stratum_without_area_needs_no_sample() -> None:
    result = estimate([SampleUnit("a", "a"), SampleUnit("a", "a")], {"a": 5.0, "b": 0.0})
    assert result.of("a").area == 5.0 and result.of("b").users_accuracy is None


def test_as_dict_has_the_issue_shape() -> None:
    data = estimate_from_counts({"a": {"a": 3, "b": 1}, "b": {"b": 4}}, {"a": 1.0, "b": 1.0}).as_dict()
    assert set(data["overall"]) == {"accuracy", "ci95"}
    assert {"users_accuracy", "users_ci95", "producers_accuracy", "producers_ci95", "mapped_area", "area",
            "area_ci95"} <= set(data["classes"]["a"])
    assert data["matrix"]["counts"] == [[3, 1], [0, 4]]


@pytest.mark.parametrize(("units", "areas", "message"), [
    ([SampleUnit("a", "a"), SampleUnit("b", "b"), SampleUnit("b", "b")], {"a": 1.0, "b": 1.0},
     "every stratum needs at least 2, and 'a' (1) has fewer"),
    ([SampleUnit("b", "b"), SampleUnit("b", "b")], {"a": 1.0, "b": 1.0}, "'a' (0) has fewer"),
    ([SampleUnit("c", "a")], {"a": 1.0}, "stratum 'c' is not a mapped class: choose 'a'"),
    ([SampleUnit("a", "a", 0.0)], {"a": 1.0}, "has area 0.0: it must be > 0"),
    ([SampleUnit("a", "a"), SampleUnit("a", "a")], {"a": float("nan")}, "mapped area of 'a' is nan"),
    ([SampleUnit("a", "a"), SampleUnit("a", "a")], {"a": -1.0}, "mapped area of 'a' is -1.0"),
    ([], {"a": 0.0}, "add up to 0"),
    ([SampleUnit("a", "a"), SampleUnit("a", "a"), SampleUnit("b", "a")], {"a": 1.0, "b": 0.0},
     "stratum 'b' has mapped area 0 but labelled units"),
])
def test_refuses_unusable_input(units: list[SampleUnit], areas: dict[str, float], message: str) -> None:
    with pytest.raises(AssessmentError) as raised:
        estimate(units, areas)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_classes_must_name_every_class() -> None:
    units = [SampleUnit("a", "a"), SampleUnit("a", "z")]
    assert estimate(units, {"a": 1.0}, classes=["z", "a", "y"]).classes == ("z", "a", "y")
    with pytest.raises(AssessmentError, match="'z' are mapped or seen in the sample but not among"):
        estimate(units, {"a": 1.0}, classes=["a"])


def test_counts_refuse_bad_matrices() -> None:
    with pytest.raises(AssessmentError, match="map class 'c' has sample counts but no mapped area"):
        estimate_from_counts({"c": {"c": 3}}, {"a": 1.0})
    with pytest.raises(AssessmentError, match="count -1 for map 'a', reference 'a'"):
        estimate_from_counts({"a": {"a": -1}}, {"a": 1.0})
