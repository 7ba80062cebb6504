"""Drawing a stratified random sample of a job's map for its accuracy assessment (issue 28).

The map is the job's classified tiles (``tile_results`` rows the job wrote); failed and empty tiles are not part of
it. The strata are the map classes: an uncertain or partial tile stays in its mapped class's stratum. Each
stratum's size is its tiles' true area on the WGS84 ellipsoid (``core.tile_area``), summed in Python over the
counts SQL groups by (class, z, y): a tile's area depends only on its zoom and row.

Allocation (``allocate``): ``per_class`` N tiles from every stratum, or ``proportional`` N in total, shared in
proportion to the strata's areas by the largest-remainder method. Proportional shares are then raised to
``MIN_PER_STRATUM`` where a stratum has that many tiles, taken one by one from the largest share, because the
estimators need two labelled tiles per stratum for a variance (Olofsson et al. 2014, section 4.2, advise moving
rare classes' allocation up from proportional for the same reason). A stratum with fewer tiles than its share is
taken whole, and what it cannot use goes to the strata furthest below their shares.

Drawing (``draw``): within a stratum, ``sample_size`` distinct ranks drawn by ``random.Random`` seeded with the
seed and the stratum's name (one class's draw does not depend on the others), then the tiles at those ranks in
(z, x, y) order, found by ``row_number()`` in SQL: the job's tiles never come into Python, only the sample does.
The units are then shuffled (seeded too) so a reviewer cannot tell a tile's stratum from where it comes.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.orm import Session

from core.assessment import AssessmentError
from core.schema import TileResult
from core.tile_area import row_area_km2, tile_area_km2

MIN_PER_STRATUM = 2
MAX_PER_STRATUM = 10_000  # people label these one by one; a larger number is most likely a typo


class SamplingError(AssessmentError):
    """A sample that cannot be drawn as asked (an allocation, a job without tiles or without coordinates)."""


@dataclass(frozen=True)
class StratumSize:
    """A map class as the job's results have it now: its tiles and their area."""

    tile_count: int
    area_km2: float


@dataclass(frozen=True)
class DrawnUnit:
    """A sampled tile, its stratum and its area."""

    z: int
    x: int
    y: int
    stratum: str
    area_km2: float


def strata_of(session: Session, *, job_id: int) -> dict[str, StratumSize]:
    """Each map class of job ``job_id`` with its tile count and area (``SamplingError`` if a tile has no z/x/y)."""
    if session.scalar(select(exists().where(TileResult.job_id == job_id, TileResult.z.is_(None)))):
        raise SamplingError(f"job {job_id}'s tiles are known by their paths only (no z/x/y), so they have no area "
                            "on the ground: an accuracy assessment needs a job over z/x/y tiles")
    rows = session.execute(select(TileResult.label, TileResult.z, TileResult.y, func.count())
                           .where(TileResult.job_id == job_id)
                           .group_by(TileResult.label, TileResult.z, TileResult.y))
    counts: dict[str, int] = defaultdict(int)
    areas: dict[str, float] = defaultdict(float)
    for label, z, y, n in rows:
        assert z is not None and y is not None  # tiles without coordinates were refused above
        counts[label] += int(n)
        areas[label] += int(n) * row_area_km2(int(z), int(y))
    return {label: StratumSize(counts[label], areas[label]) for label in sorted(counts)}


def allocate(strata: Mapping[str, StratumSize], *, per_class: int | None = None,
             proportional: int | None = None) -> dict[str, int]:
    """Each stratum's sample size (see the module's docstring); exactly one of ``per_class`` and ``proportional``."""
    if (per_class is None) == (proportional is None):
        raise SamplingError("give either --per-class N (N tiles of every class) or --proportional N (N in all, "
                            "shared by the classes' areas)")
    if not strata:
        raise SamplingError("the job has no classified tiles to sample")
    if per_class is not None:
        if not MIN_PER_STRATUM <= per_class <= MAX_PER_STRATUM:
            raise SamplingError(f"--per-class must be within {MIN_PER_STRATUM}..{MAX_PER_STRATUM:,} (got {per_class}):"
                                " the report needs at least 2 labelled tiles per class")
        return {name: min(per_class, size.tile_count) for name, size in strata.items()}
    assert proportional is not None
    smallest = MIN_PER_STRATUM * len(strata)
    if not smallest <= proportional <= MAX_PER_STRATUM * len(strata):
        raise SamplingError(f"--proportional must be within {smallest}..{MAX_PER_STRATUM * len(strata):,} for "
                            f"{len(strata)} classes (got {proportional}): at least {MIN_PER_STRATUM} per class")
    return _proportional(strata, proportional)


def _proportional(strata: Mapping[str, StratumSize], total: int) -> dict[str, int]:
    whole = sum(size.area_km2 for size in strata.values())
    shares = {name: total * size.area_km2 / whole for name, size in strata.items()}
    sizes = {name: math.floor(share) for name, share in shares.items()}
    by_remainder = sorted(shares, key=lambda name: (-(shares[name] - sizes[name]), name))
    for name in by_remainder[: total - sum(sizes.values())]:
        sizes[name] += 1
    for name in sorted(strata):
        while sizes[name] < min(MIN_PER_STRATUM, strata[name].tile_count):
            donor = max(sorted(sizes), key=lambda other: sizes[other])
            sizes[donor] -= 1
            sizes[name] += 1
    sizes = {name: min(n, strata[name].tile_count) for name, n in sizes.items()}
    while (left := total - sum(sizes.values())) > 0:  # what a stratum taken whole could not use goes to the others
        room = [name for name in sorted(sizes) if sizes[name] < strata[name].tile_count]
        if not room:
            break
        for name in sorted(room, key=lambda other: sizes[other] - shares[other])[:left]:
            sizes[name] += 1
    return sizes


def draw(session: Session, *, job_id: int, strata: Mapping[str, StratumSize], sizes: Mapping[str, int],
         seed: int) -> list[DrawnUnit]:
    """The sampled tiles of job ``job_id``, ``sizes[class]`` of each of its ``strata``, in the order a reviewer
    sees them."""
    ranked = (select(TileResult.z, TileResult.x, TileResult.y,
                     func.row_number().over(order_by=(TileResult.z, TileResult.x, TileResult.y)).label("rank"))
              .where(TileResult.job_id == job_id, TileResult.label == bindparam("stratum")).subquery())
    at_ranks = select(ranked.c.z, ranked.c.x, ranked.c.y).where(ranked.c.rank.in_(bindparam("ranks", expanding=True)))
    units: list[DrawnUnit] = []
    for name in sorted(sizes):
        if not sizes[name]:
            continue
        ranks = sorted(random.Random(f"{seed}:{name}").sample(range(1, strata[name].tile_count + 1), sizes[name]))
        for z, x, y in session.execute(at_ranks, {"stratum": name, "ranks": ranks}):
            units.append(DrawnUnit(int(z), int(x), int(y), name, tile_area_km2(int(z), int(x), int(y))))
    units.sort(key=lambda unit: (unit.stratum, unit.z, unit.x, unit.y))
    random.Random(f"{seed}:order").shuffle(units)
    return units
