"""The area-weighted estimator's 95% intervals cover the true areas about 95% of the time on a synthetic map of Web
Mercator tiles whose ground areas differ (0° to 70° N: a z8 tile at the equator is about 8 times one at 70°).

The population is fixed (seeded): each tile has a true class and a map class, both depending on latitude, so that
large equatorial tiles and small northern ones err differently. It is then sampled 200 times, 50 tiles per stratum,
by stratified random sampling as ``assess sample`` does. Counting every tile as one unit instead of weighting it by
its area misses the true areas far more often: the second test shows the weighting is what makes the intervals hold.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import mercantile
import pytest

from core.assessment.estimators import SampleUnit, estimate
from core.tile_area import tile_area_km2

ZOOM = 8
CLASSES = ("forest", "water", "urban")
RUNS = 200
PER_STRATUM = 50


@dataclass(frozen=True)
class _Tile:
    area: float
    truth: str
    mapped: str


def _true_class(rng: random.Random, north: float) -> str:
    share = rng.random()
    forest = 0.2 + 0.5 * north  # forest grows northwards, where tiles are small
    return "forest" if share < forest else "water" if share < forest + 0.15 else "urban"


def _map_class(rng: random.Random, truth: str, north: float) -> str:
    draw = rng.random()
    if truth == "forest":  # near the equator, forest is more often mapped as urban
        return "forest" if draw < 0.75 + 0.2 * north else "urban" if draw < 0.95 + 0.04 * north else "water"
    if truth == "urban":
        return "urban" if draw < 0.6 + 0.3 * north else "forest"
    return "water" if draw < 0.9 else "forest"


@pytest.fixture(scope="module")
def population() -> list[_Tile]:
    rng = random.Random(28)
    top, bottom = mercantile.tile(0, 70, ZOOM).y, mercantile.tile(0, 0.001, ZOOM).y
    tiles = []
    for y in range(top, bottom + 1):
        north = mercantile.bounds(0, y, ZOOM).south / 70
        for x in range(100, 140):
            truth = _true_class(rng, north)
            tiles.append(_Tile(tile_area_km2(ZOOM, x, y), truth, _map_class(rng, truth, north)))
    return tiles


def _coverage(population: list[_Tile], *, weighted: bool) -> dict[str, float]:
    true_area = {c: sum(t.area for t in population if t.truth == c) for c in CLASSES}
    mapped_area = {c: sum(t.area for t in population if t.mapped == c) for c in CLASSES}
    strata = {c: [t for t in population if t.mapped == c] for c in CLASSES}
    rng = random.Random(2028)
    covered = dict.fromkeys(CLASSES, 0)
    for _ in range(RUNS):
        sample = [t for c in CLASSES for t in rng.sample(strata[c], PER_STRATUM)]
        result = estimate([SampleUnit(t.mapped, t.truth, t.area if weighted else 1.0) for t in sample], mapped_area)
        for c in CLASSES:
            covered[c] += abs(result.of(c).area - true_area[c]) <= result.of(c).area_ci95
    return {c: covered[c] / RUNS for c in CLASSES}


def test_population_is_unequal(population: list[_Tile]) -> None:
    areas = [t.area for t in population]
    assert max(areas) / min(areas) > 8
    assert all(sum(t.mapped == c for t in population) > 10 * PER_STRATUM // 2 for c in CLASSES)


def test_intervals_cover_the_true_areas(population: list[_Tile]) -> None:
    coverage = _coverage(population, weighted=True)
    assert all(0.90 <= share <= 0.99 for share in coverage.values()), coverage


def test_unweighted_tiles_miss_the_true_areas(population: list[_Tile]) -> None:
    coverage = _coverage(population, weighted=False)
    assert min(coverage.values()) < 0.8, coverage
