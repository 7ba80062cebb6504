"""Stratified estimators of map accuracy and of each class's area, with 95% confidence intervals.

The design is stratified random sampling with the map classes as strata (Olofsson et al. 2014, "Good practices for
estimating area and assessing accuracy of land change", RSE 148: 42-57). Stratum ``h`` has mapped area
``A_h`` (recorded when the sample was drawn), ``A = sum_h A_h`` and ``W_h = A_h / A``. Its ``n_h`` labelled units ``u``
have areas ``a_u`` (a tile's km²; any constant for equal-area units such as pixels) and reference classes ``r_u``.

Tiles are not equal-area units, so within a stratum each unit is weighted by its area: the separate ratio estimator
(Cochran 1977, chapter 6), with the unit's area as the auxiliary variable whose stratum total ``A_h`` is known. For
a per-unit value ``z_u``::

    R_h(z)  = sum_u a_u z_u / sum_u a_u                                  (u in stratum h's sample)
    V_h(z)  = sum_u (a_u (z_u - R_h(z)))^2 / (n_h (n_h - 1) abar_h^2)     abar_h = sum_u a_u / n_h

With every ``a_u`` equal and ``z`` an indicator of mean ``p``, ``R_h = p`` and ``V_h = p (1 - p) / (n_h - 1)``:
Olofsson's formulas below follow exactly (the literature tests check them on the papers' examples).

With ``d_uj = 1 if r_u = j``:

- area proportions (the error matrix in area): ``p_hj = W_h R_h(d_j)`` (Olofsson eq. 4, 9);
- class ``j``'s proportion ``p_.j = sum_h p_hj``, ``V(p_.j) = sum_h W_h^2 V_h(d_j)`` (eq. 9, 10);
  its error-adjusted area ``A p_.j`` with standard error ``A sqrt(V(p_.j))`` (eq. 11);
- overall accuracy ``O = sum_h p_hh``, ``V(O) = sum_h W_h^2 V_h(d_h)`` (eq. 1, 5);
- user's accuracy of map class ``i``: ``U_i = R_i(d_i)``, ``V(U_i) = V_i(d_i)`` (eq. 2, 6);
- producer's accuracy of reference class ``j``: ``P_j = p_jj / p_.j``, a ratio of two stratified estimates, whose
  linearised variance is ``V(P_j) = sum_h W_h^2 V_h(y - P_j d_j) / p_.j^2`` with ``y_u = d_uj`` in stratum ``j`` and
  0 elsewhere (as Stehman 2014, IJRS 35: 4923-4939, treats a ratio of two estimated totals); with equal areas
  this is Olofsson 2014 eq. 7 (Card 1982).

A 95% interval is the estimate ± 1.96 standard errors, as in Olofsson 2014; ``*_ci95`` are those half-widths.
A reference class that is no map class (no stratum) still gets an area and a producer's accuracy (0 where some
sample unit shows it); its user's accuracy is undefined (None), as is a producer's accuracy whose class was never
seen in the sample. A stratum with mapped area needs at least 2 labelled units: with one the variance is unknown.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.assessment import AssessmentError

Z95 = 1.96
MIN_PER_STRATUM = 2


@dataclass(frozen=True)
class SampleUnit:
    """One labelled sample unit."""

    stratum: str  # its map class: the stratum it was drawn from
    reference: str  # its reference class
    area: float = 1.0  # its area (km² for a tile); equal areas give Olofsson's formulas exactly


@dataclass(frozen=True)
class ClassEstimate:
    """One class's estimates; accuracies are None where undefined, areas are in the mapped areas' unit."""

    name: str
    mapped_area: float
    proportion: float  # estimated share of the total area, p_.j
    proportion_se: float
    area: float  # error-adjusted area, A p_.j
    area_ci95: float
    users_accuracy: float | None
    users_ci95: float | None
    producers_accuracy: float | None
    producers_ci95: float | None


@dataclass(frozen=True)
class AccuracyAssessment:
    """The error matrix (map rows x reference columns, in ``classes`` order), overall accuracy and per-class
    estimates."""

    classes: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]  # labelled sample units
    proportions: tuple[tuple[float, ...], ...]  # estimated area proportions, p_ij
    overall_accuracy: float
    overall_ci95: float
    estimates: tuple[ClassEstimate, ...]  # one per class, in ``classes`` order
    total_area: float

    def of(self, name: str) -> ClassEstimate:
        """The estimates of class ``name``."""
        return self.estimates[self.classes.index(name)]

    @property
    def sample_size(self) -> int:
        return sum(sum(row) for row in self.counts)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape that ``assess report`` and ``assess estimate`` print."""
        return {
            "overall": {"accuracy": self.overall_accuracy, "ci95": self.overall_ci95},
            "classes": {c.name: {
                "users_accuracy": c.users_accuracy, "users_ci95": c.users_ci95,
                "producers_accuracy": c.producers_accuracy, "producers_ci95": c.producers_ci95,
                "mapped_area": c.mapped_area, "area": c.area, "area_ci95": c.area_ci95,
                "proportion": c.proportion, "proportion_se": c.proportion_se,
            } for c in self.estimates},
            "matrix": {"classes": list(self.classes), "counts": [list(row) for row in self.counts],
                       "proportions": [list(row) for row in self.proportions]},
            "sample_size": self.sample_size,
            "total_area": self.total_area,
        }


# A stratum's sample, grouped: (reference class, unit area) -> how many units. Tiles of one zoom and row share an
# area, and an error matrix of counts is all equal areas, so groups stay few however large the sample.
_Groups = dict[tuple[str, float], int]


class _Stratum:
    """The ratio estimator's sums over one stratum's labelled units."""

    def __init__(self, groups: _Groups) -> None:
        self.groups = groups
        self.n = sum(groups.values())
        self.area = math.fsum(area * count for (_, area), count in groups.items())

    def count(self, reference: str) -> int:
        return sum(count for (ref, _), count in self.groups.items() if ref == reference)

    def mean(self, z: Callable[[str], float]) -> float:
        """R_h(z): the area-weighted mean of z over the stratum's units."""
        return math.fsum(area * z(ref) * count for (ref, area), count in self.groups.items()) / self.area

    def variance(self, z: Callable[[str], float]) -> float:
        """V_h(z): the ratio estimator's variance of R_h(z) (without finite population correction)."""
        ratio = self.mean(z)
        squares = math.fsum((area * (z(ref) - ratio)) ** 2 * count for (ref, area), count in self.groups.items())
        mean_area = self.area / self.n
        return squares / (self.n * (self.n - 1) * mean_area ** 2)


def estimate(units: Sequence[SampleUnit], mapped_areas: Mapping[str, float],
             classes: Sequence[str] | None = None) -> AccuracyAssessment:
    """Accuracy and area estimates from labelled sample units and each stratum's mapped area.

    ``classes`` orders the output (default: the strata in ``mapped_areas`` order, then other reference classes
    sorted); it must name every stratum and reference class. Raises AssessmentError for unusable input.
    """
    groups: dict[str, _Groups] = {name: {} for name in mapped_areas}
    for unit in units:
        if unit.stratum not in groups:
            raise AssessmentError(f"a sample unit's stratum {unit.stratum!r} is not a mapped class: "
                                  f"choose {_names(mapped_areas)}")
        if not (math.isfinite(unit.area) and unit.area > 0):
            raise AssessmentError(f"a sample unit in stratum {unit.stratum!r} has area {unit.area}: it must be > 0")
        key = (unit.reference, float(unit.area))
        groups[unit.stratum][key] = groups[unit.stratum].get(key, 0) + 1
    return _estimate(groups, mapped_areas, classes)


def estimate_from_counts(counts: Mapping[str, Mapping[str, int]],
                         mapped_areas: Mapping[str, float]) -> AccuracyAssessment:
    """The same estimates from an error matrix of sample counts (map class -> reference class -> count) of
    equal-area units: Olofsson et al.'s formulas exactly. Classes in the order map rows, then other columns."""
    groups: dict[str, _Groups] = {name: {} for name in mapped_areas}
    for stratum, row in counts.items():
        if stratum not in groups:
            raise AssessmentError(f"map class {stratum!r} has sample counts but no mapped area: "
                                  f"classes with an area are {_names(mapped_areas)}")
        for reference, count in row.items():
            if count < 0:
                raise AssessmentError(f"count {count} for map {stratum!r}, reference {reference!r}: counts are >= 0")
            if count:
                groups[stratum][(reference, 1.0)] = int(count)
    columns = [ref for row in counts.values() for ref in row]
    order = list(mapped_areas) + [ref for ref in dict.fromkeys(columns) if ref not in mapped_areas]
    return _estimate(groups, mapped_areas, order)


def _names(names: Mapping[str, Any] | Sequence[str]) -> str:
    return ", ".join(repr(name) for name in names) or "none"


def _class_order(groups: Mapping[str, _Groups], mapped_areas: Mapping[str, float],
                 classes: Sequence[str] | None) -> tuple[str, ...]:
    seen = sorted({ref for stratum in groups.values() for ref, _ in stratum} - set(mapped_areas))
    if classes is None:
        return (*mapped_areas, *seen)
    missing = [name for name in (*mapped_areas, *seen) if name not in classes]
    if missing:
        raise AssessmentError(f"classes {_names(missing)} are mapped or seen in the sample but not among the "
                              f"classes given ({_names(classes)})")
    if len(set(classes)) != len(classes):
        raise AssessmentError(f"the classes given repeat a name: {_names(classes)}")
    return tuple(classes)


def _strata(groups: Mapping[str, _Groups], mapped_areas: Mapping[str, float]) -> dict[str, _Stratum]:
    """The strata that hold mapped area, each with at least MIN_PER_STRATUM labelled units."""
    for name, area in mapped_areas.items():
        if not (math.isfinite(area) and area >= 0):
            raise AssessmentError(f"mapped area of {name!r} is {area}: it must be a number >= 0")
    short = [f"{name!r} ({sum(groups[name].values())})" for name, area in mapped_areas.items()
             if area > 0 and sum(groups[name].values()) < MIN_PER_STRATUM]
    if short:
        raise AssessmentError(f"too few labelled units: every stratum needs at least {MIN_PER_STRATUM}, and "
                              f"{', '.join(short)} {'has' if len(short) == 1 else 'have'} fewer")
    empty = [name for name, area in mapped_areas.items() if area == 0 and groups[name]]
    if empty:
        raise AssessmentError(f"stratum {empty[0]!r} has mapped area 0 but labelled units: a stratum without area "
                              "cannot have been sampled")
    if not math.fsum(mapped_areas.values()) > 0:
        raise AssessmentError("the mapped areas add up to 0: there is nothing to estimate")
    return {name: _Stratum(groups[name]) for name, area in mapped_areas.items() if area > 0}


def _estimate(groups: Mapping[str, _Groups], mapped_areas: Mapping[str, float],
              classes: Sequence[str] | None) -> AccuracyAssessment:
    order = _class_order(groups, mapped_areas, classes)
    strata = _strata(groups, mapped_areas)
    total = math.fsum(mapped_areas.values())
    weight = {name: mapped_areas[name] / total for name in strata}

    def indicator(cls: str) -> Callable[[str], float]:
        return lambda ref: 1.0 if ref == cls else 0.0

    counts = tuple(tuple(strata[row].count(col) if row in strata else 0 for col in order) for row in order)
    proportions = tuple(tuple(weight[row] * strata[row].mean(indicator(col)) if row in strata else 0.0
                              for col in order) for row in order)
    overall = math.fsum(proportions[i][i] for i in range(len(order)))
    overall_var = math.fsum(weight[h] ** 2 * s.variance(indicator(h)) for h, s in strata.items())
    estimates = tuple(_class_estimate(cls, strata, weight, mapped_areas, total, proportions[k][k],
                                      math.fsum(row[k] for row in proportions))
                      for k, cls in enumerate(order))
    return AccuracyAssessment(classes=order, counts=counts, proportions=proportions, overall_accuracy=overall,
                              overall_ci95=Z95 * math.sqrt(overall_var), estimates=estimates, total_area=total)


def _class_estimate(cls: str, strata: Mapping[str, _Stratum], weight: Mapping[str, float],
                    mapped_areas: Mapping[str, float], total: float, diagonal: float,
                    proportion: float) -> ClassEstimate:
    def d(ref: str) -> float:
        return 1.0 if ref == cls else 0.0

    proportion_var = math.fsum(weight[h] ** 2 * s.variance(d) for h, s in strata.items())
    users = users_ci = producers = producers_ci = None
    if cls in strata:
        users = strata[cls].mean(d)
        users_ci = Z95 * math.sqrt(strata[cls].variance(d))
    if proportion > 0:
        producers = diagonal / proportion
        pa = producers

        def residual(h: str) -> Callable[[str], float]:
            # y - P d: y counts the class only in its own stratum (mapped and reference agree)
            return lambda ref: (d(ref) if h == cls else 0.0) - pa * d(ref)

        producers_var = math.fsum(weight[h] ** 2 * s.variance(residual(h)) for h, s in strata.items())
        producers_ci = Z95 * math.sqrt(producers_var) / proportion
    return ClassEstimate(name=cls, mapped_area=float(mapped_areas.get(cls, 0.0)), proportion=proportion,
                         proportion_se=math.sqrt(proportion_var), area=total * proportion,
                         area_ci95=Z95 * total * math.sqrt(proportion_var), users_accuracy=users,
                         users_ci95=users_ci, producers_accuracy=producers, producers_ci95=producers_ci)
