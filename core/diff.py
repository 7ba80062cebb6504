"""What changed between two jobs (``tileclass diff``, issue 29 part 3): the tiles that both classified, compared.

Two jobs over the same tiles are two dates of imagery or, as results are stored today (one row per model and tile),
two models over the same imagery: then the diff is a disagreement map. Which rows a job contributes is decided in
one place, ``side_rows`` (the job's rows as ``core.queries.selections.selected`` defines them), so that when results
hold an imagery vintage only that function changes.

The two sides are joined on (z, x, y) in SQL. Each compared tile is:

- unchanged: the same class (or group, with class groupings) in both;
- a confident change: different, and both answers confident and both tiles whole;
- an uncertain change: different, and either answer flagged uncertain (by its own job's ``--uncertain-below``) or
  either tile partial (coverage below 1: part of it had no data), reported apart from the confident changes.

The transition matrix is counted in the database by (from, to, uncertain, z, y) and turned into km² with the exact
area of a tile's row (``core.tile_area``), so its size is classes² x rows, never the number of tiles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import mercantile
from sqlalchemy import ColumnElement, Subquery, and_, case, func, or_, select
from sqlalchemy.orm import Session

from core.bbox import TileRange
from core.class_groups import ClassGrouping, GroupingError, load_grouping
from core.errors import TileclassError
from core.jobs import get_job
from core.models.info import ModelInfo
from core.queries import Selection
from core.queries.selections import YIELD_PER, select_results, selected
from core.schema import TileResult
from core.tile_area import row_area_km2

CONFIDENT, UNCERTAIN = "confident", "uncertain"


class DiffError(TileclassError):
    """Two jobs that cannot be compared: the same job, different zooms, different classes without a grouping."""


@dataclass(frozen=True)
class DiffSide:
    """One of the two jobs: its model, zooms and bounds, and how its classes are named in the diff."""

    job_id: int
    model: ModelInfo
    selection: Selection
    zooms: tuple[int, ...]
    uncertain_below: float | None
    grouping: ClassGrouping | None = None

    def name_of(self, label: str) -> str:
        return self.grouping.group_of(label) if self.grouping else label

    def names(self, label: ColumnElement[str]) -> ColumnElement[str]:
        """The class (or group) of a label column, in SQL."""
        return self.grouping.expression(label) if self.grouping else label


@dataclass
class Transition:
    """Tiles that were ``before`` in job A and are ``after`` in job B: confident ones and uncertain ones apart."""

    before: str
    after: str
    tiles: int = 0
    area_km2: float = 0.0
    uncertain_tiles: int = 0
    uncertain_km2: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.before, "to": self.after, "tiles": self.tiles, "area_km2": self.area_km2,
                "uncertain_tiles": self.uncertain_tiles, "uncertain_km2": self.uncertain_km2}


@dataclass
class DiffReport:
    """The transition matrix of two jobs (``transitions``: every (from, to) pair seen, the diagonal included)."""

    a: DiffSide
    b: DiffSide
    transitions: list[Transition] = field(default_factory=list)
    only_a: int = 0
    only_b: int = 0

    def _sum(self, pick: Callable[[Transition], float], *, changed: bool) -> float:
        return sum(pick(t) for t in self.transitions if (t.before != t.after) == changed)

    @property
    def compared(self) -> int:
        return sum(t.tiles + t.uncertain_tiles for t in self.transitions)

    @property
    def changes(self) -> list[Transition]:
        return [t for t in self.transitions if t.before != t.after]

    def as_dict(self) -> dict[str, Any]:
        unchanged = self._sum(lambda t: t.tiles + t.uncertain_tiles, changed=False)
        unchanged_km2 = self._sum(lambda t: t.area_km2 + t.uncertain_km2, changed=False)
        return {
            "job_a": _side_dict(self.a), "job_b": _side_dict(self.b), "compared_tiles": self.compared,
            "only_in_a": self.only_a, "only_in_b": self.only_b,
            "unchanged": {"tiles": int(unchanged), "area_km2": unchanged_km2},
            "changed": {"tiles": int(self._sum(lambda t: t.tiles, changed=True)),
                        "area_km2": self._sum(lambda t: t.area_km2, changed=True)},
            "uncertain_change": {"tiles": int(self._sum(lambda t: t.uncertain_tiles, changed=True)),
                                 "area_km2": self._sum(lambda t: t.uncertain_km2, changed=True)},
            "transitions": [t.as_dict() for t in self.transitions],
        }


@dataclass(frozen=True, slots=True)
class ChangedTile:
    """A tile whose class (or group) differs between the jobs."""

    z: int
    x: int
    y: int
    before: str
    after: str
    confidence_a: float
    confidence_b: float
    uncertain: bool

    def as_dict(self) -> dict[str, Any]:
        west, south, east, north = mercantile.bounds(self.x, self.y, self.z)
        return {"z": self.z, "x": self.x, "y": self.y, "from": self.before, "to": self.after,
                "confidence_a": self.confidence_a, "confidence_b": self.confidence_b, "uncertain": self.uncertain,
                "bounds": [west, south, east, north]}


def _side_dict(side: DiffSide) -> dict[str, Any]:
    return {"job": side.job_id, "model": side.model.hash, "zooms": list(side.zooms),
            "uncertain_below": side.uncertain_below, "grouping": side.grouping.name if side.grouping else None}


def side_rows(side: DiffSide, tiles: TileRange | None = None) -> Subquery:
    """The rows a job contributes to a diff (``tiles``: only those in that range): its results with coordinates.

    The one place that says which rows are a job's, for the diff and its overlay: with imagery vintages, the
    job's vintage joins ``side.selection`` here.
    """
    selection = side.selection.at(tiles) if tiles is not None else side.selection
    return (select(TileResult.z, TileResult.x, TileResult.y, TileResult.label, TileResult.confidence,
                   TileResult.uncertain, TileResult.coverage)
            .where(*selected(selection), TileResult.z.is_not(None)).subquery(f"job_{side.job_id}"))


def diff_sides(session: Session, job_a: int, job_b: int, *, groups: tuple[str, ...] = ()) -> tuple[DiffSide, DiffSide]:
    """The two jobs, checked to be comparable: same zooms, and the same classes unless ``groups`` maps both.

    ``groups``: no grouping; one grouping that names every class of both models; or one per job, each made for that
    job's model.

    Raises:
        DiffError, GroupingError, NotFoundError: in one line.
    """
    if job_a == job_b:
        raise DiffError(f"diff compares two different jobs (got job {job_a} twice)")
    if len(groups) > 2:
        raise DiffError("--groups takes one grouping, or two (one per job) separated by a comma")
    sides = [_load_side(session, job) for job in (job_a, job_b)]
    a, b = sides
    if a.zooms != b.zooms:
        raise DiffError(f"job {a.job_id} is at zoom {_zooms(a)} and job {b.job_id} at zoom {_zooms(b)}: diff compares "
                        "tiles of the same zoom")
    if groups:
        groupings = [load_grouping(session, name) for name in groups]
        if len(groupings) == 2:
            for side, grouping in zip(sides, groupings, strict=True):
                grouping.check_model(side.model.hash)
        else:
            _check_maps(groupings[0], sides)
        a, b = replace(a, grouping=groupings[0]), replace(b, grouping=groupings[-1])
    elif set(a.model.class_names) != set(b.model.class_names):
        raise DiffError(f"job {a.job_id}'s model has the classes {', '.join(a.model.class_names)} and job {b.job_id}'s "
                        f"{', '.join(b.model.class_names)}: give --groups NAME (a grouping that names both models' "
                        "classes, or NAME_A,NAME_B, one per job)")
    return a, b


def _zooms(side: DiffSide) -> str:
    return ", ".join(map(str, side.zooms))


def _load_side(session: Session, job_id: int) -> DiffSide:
    job = get_job(session, job_id)
    selection = select_results(session, job_id=job_id)
    zooms = _zooms_of(session, selection)
    if selection.model is None or not zooms:
        raise DiffError(f"job {job_id} has no classified tiles with coordinates to compare")
    return DiffSide(job_id, selection.model, selection, zooms, job.uncertain_below)


def _zooms_of(session: Session, selection: Selection) -> tuple[int, ...]:
    """The zooms a job has results at, finest first found: one ``ORDER BY z DESC LIMIT 1`` per zoom, which walks
    ``uq_tile_results_model_zxy`` backwards instead of reading every row of the job (the overlay asks per tile)."""
    found: list[int] = []
    while True:
        stmt = select(TileResult.z).where(*selected(selection), TileResult.z.is_not(None))
        if found:
            stmt = stmt.where(TileResult.z < found[-1])
        z = session.scalar(stmt.order_by(TileResult.z.desc()).limit(1))
        if z is None:
            return tuple(reversed(found))
        found.append(z)


def _check_maps(grouping: ClassGrouping, sides: list[DiffSide]) -> None:
    named = set(grouping.mapping)
    for side in sides:
        missing = [label for label in side.model.class_names if label not in named]
        if missing:
            raise GroupingError(f"grouping {grouping.name!r} does not name job {side.job_id}'s class"
                                f"{'es' if len(missing) > 1 else ''} {', '.join(missing)}: give a grouping that "
                                "names both models' classes, or NAME_A,NAME_B (one per job)")


def joined(a: DiffSide, b: DiffSide, tiles: TileRange | None = None) -> tuple[Subquery, Subquery, ColumnElement[bool]]:
    """Both sides as subqueries (``tiles``: within that range), and their join on (z, x, y)."""
    left, right = side_rows(a, tiles), side_rows(b, tiles)
    on = and_(left.c.z == right.c.z, left.c.x == right.c.x, left.c.y == right.c.y)
    return left, right, on


def uncertain_change(left: Subquery, right: Subquery) -> ColumnElement[bool]:
    """Whether a compared tile's change is uncertain: either answer uncertain, or either tile partial."""
    # NULL coverage (a result from before it was measured) counts as whole: nothing says part of it was missing.
    return or_(left.c.uncertain, right.c.uncertain, left.c.coverage < 1.0, right.c.coverage < 1.0)


def diff_jobs(session: Session, a: DiffSide, b: DiffSide) -> DiffReport:
    """The transition matrix of the tiles both jobs classified (tiles and km², confident and uncertain apart)."""
    left, right, on = joined(a, b)
    flag = case((uncertain_change(left, right), 1), else_=0)
    stmt = (select(left.c.label, right.c.label, flag, left.c.z, left.c.y, func.count())
            .select_from(left.join(right, on)).group_by(left.c.label, right.c.label, flag, left.c.z, left.c.y))
    cells: dict[tuple[str, str], Transition] = {}
    for label_a, label_b, unsure, z, y, count in session.execute(stmt):
        key = (a.name_of(label_a), b.name_of(label_b))
        cell = cells.setdefault(key, Transition(*key))
        area = count * row_area_km2(z, y)
        if unsure:
            cell.uncertain_tiles += count
            cell.uncertain_km2 += area
        else:
            cell.tiles += count
            cell.area_km2 += area
    report = DiffReport(a, b, [cells[key] for key in sorted(cells)])
    report.only_a = _count(session, left) - report.compared
    report.only_b = _count(session, right) - report.compared
    return report


def _count(session: Session, side: Subquery) -> int:
    return int(session.scalar(select(func.count()).select_from(side)) or 0)


def iter_changes(session: Session, a: DiffSide, b: DiffSide, *, tiles: TileRange | None = None,
                 limit: int | None = None, yield_per: int = YIELD_PER) -> Iterator[ChangedTile]:
    """Stream the changed tiles (confident and uncertain; ``tiles``: only within that range), in (z, x, y)
    order."""
    left, right, on = joined(a, b, tiles)
    before, after = a.names(left.c.label), b.names(right.c.label)
    stmt = (select(left.c.z, left.c.x, left.c.y, before, after, left.c.confidence, right.c.confidence,
                   uncertain_change(left, right))
            .select_from(left.join(right, on)).where(before != after)
            .order_by(left.c.z, left.c.x, left.c.y).limit(limit))
    for z, x, y, from_name, to_name, confidence_a, confidence_b, unsure in session.execute(
            stmt.execution_options(yield_per=yield_per)):
        yield ChangedTile(z, x, y, from_name, to_name, confidence_a, confidence_b, bool(unsure))
