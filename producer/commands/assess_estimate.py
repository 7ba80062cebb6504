"""``tileclass assess estimate COUNTS.csv --areas AREAS.csv``: the stratified estimator of ``assess report`` on an
error matrix from elsewhere, and the text printer both commands share.

COUNTS.csv: a header row ``map,<reference class>,...``, then one row per map class: its name and its sample counts
(non-negative integers), the map classes being the strata of a stratified random sample::

    map,Deforestation,Forest gain,Stable forest,Stable non-forest
    Deforestation,66,0,5,4
    ...

AREAS.csv: a header row ``class,area``, then each map class's mapped area, in any unit; the estimated areas come
back in that unit. A reference class that is no map class (no row, no area) is fine: it gets an estimated area.
Every malformed file is a one-line error naming the file and row (rows numbered as a spreadsheet shows them).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core.assessment import AssessmentError
from producer.commands.options import Json

if TYPE_CHECKING:
    from core.assessment.estimators import AccuracyAssessment


def estimate(
    counts: Annotated[Path, typer.Argument(metavar="COUNTS.csv", help="Error matrix of sample counts: header "
                                           "'map,<reference class>,...', then one row per map class.")],
    areas: Annotated[Path, typer.Option("--areas", metavar="AREAS.csv", help="Header 'class,area', then each map "
                                        "class's mapped area (any unit; estimates come back in it).")],
    as_json: Json = False,
) -> None:
    """Accuracies and error-adjusted areas with 95% intervals from an error matrix and the mapped areas
    (Olofsson et al. 2014's stratified estimators)."""
    from core.assessment.estimators import estimate_from_counts

    matrix = read_counts(counts)
    mapped = read_areas(areas)
    for name in matrix:
        if name not in mapped:
            raise AssessmentError(f"{counts.name}: map class {name!r} has no area in {areas.name} (it has "
                                  f"{_names(mapped)})")
    for name, area in mapped.items():
        if area > 0 and name not in matrix:
            raise AssessmentError(f"{areas.name}: class {name!r} has a mapped area but no row of sample counts in "
                                  f"{counts.name}")
    result = estimate_from_counts(matrix, mapped)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        print_assessment(result, "")


def _rows(path: Path, what: str) -> list[tuple[int, list[str]]]:
    """The non-blank rows of CSV ``path`` with their spreadsheet row numbers (header first)."""
    if not path.is_file():
        raise AssessmentError(f"{what} file {str(path)!r} does not exist")
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = [(number, [cell.strip() for cell in row]) for number, row in enumerate(csv.reader(handle), 1)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AssessmentError(f"{path.name} is not a readable CSV file: {exc}") from None
    rows = [(number, row) for number, row in rows if any(row)]
    if not rows:
        raise AssessmentError(f"{path.name} is empty: it needs a header row and one row per class")
    return rows


def _unique(path: Path, number: int, names: Sequence[str], what: str) -> None:
    for name in names:
        if not name:
            raise AssessmentError(f"{path.name} row {number}: a {what} has no name")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise AssessmentError(f"{path.name} row {number}: {what} {_names(repeated)} appears more than once")


def read_counts(path: Path) -> dict[str, dict[str, int]]:
    """Map class -> reference class -> sample count, from an error matrix CSV (format in the module docstring)."""
    (header_row, header), *rows = _rows(path, "counts")
    if header[0].casefold() != "map" or len(header) < 2:
        raise AssessmentError(f"{path.name} row {header_row}: the header must be 'map,<reference class>,...' "
                              f"(got {','.join(header)!r})")
    references = header[1:]
    _unique(path, header_row, references, "reference class")
    if not rows:
        raise AssessmentError(f"{path.name} has no rows of counts after its header")
    counts: dict[str, dict[str, int]] = {}
    for number, row in rows:
        if len(row) != len(header):
            raise AssessmentError(f"{path.name} row {number} has {len(row)} cells; the header has {len(header)}")
        name = row[0]
        _unique(path, number, [*counts, name], "map class")
        counts[name] = {ref: _count(path, number, ref, cell) for ref, cell in zip(references, row[1:], strict=True)}
    return counts


def _count(path: Path, number: int, reference: str, cell: str) -> int:
    if not cell.isdigit():
        raise AssessmentError(f"{path.name} row {number}, column {reference!r}: {cell!r} is not a count (a whole "
                              "number >= 0)")
    return int(cell)


def read_areas(path: Path) -> dict[str, float]:
    """Map class -> mapped area, from a ``class,area`` CSV."""
    (header_row, header), *rows = _rows(path, "areas")
    if [cell.casefold() for cell in header] != ["class", "area"]:
        raise AssessmentError(f"{path.name} row {header_row}: the header must be 'class,area' "
                              f"(got {','.join(header)!r})")
    if not rows:
        raise AssessmentError(f"{path.name} has no rows of areas after its header")
    areas: dict[str, float] = {}
    for number, row in rows:
        if len(row) != 2:
            raise AssessmentError(f"{path.name} row {number} has {len(row)} cells: it needs a class and an area")
        name, cell = row
        _unique(path, number, [*areas, name], "class")
        try:
            area = float(cell)
        except ValueError:
            area = math.nan
        if not (math.isfinite(area) and area >= 0):
            raise AssessmentError(f"{path.name} row {number}: area {cell!r} of {name!r} is not a number >= 0")
        areas[name] = area
    return areas


def _names(names: Sequence[str] | dict[str, float]) -> str:
    return ", ".join(repr(name) for name in names) or "none"


def _number(value: float | None) -> str:
    """An area or count as a person reads it: thousands separated, about 4 significant digits for small ones."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def _share(value: float | None, ci95: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ± {ci95 or 0.0:.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[k]) for row in (header, *rows)) for k in range(len(header))]
    return ["  " + "  ".join(cell.ljust(w) if k == 0 else cell.rjust(w)
                             for k, (cell, w) in enumerate(zip(row, widths, strict=True)))
            for row in (header, *rows)]


def assessment_lines(result: AccuracyAssessment, unit: str) -> list[str]:
    """The text report of an assessment; ``unit`` names the areas' unit ("" for none)."""
    names = list(result.classes)
    in_unit = f" ({unit})" if unit else ""
    lines = ["Error matrix in sample counts (rows: map class, columns: reference class)"]
    lines += _table(["map", *names, "total"], [[name, *(str(c) for c in row), str(sum(row))]
                                               for name, row in zip(names, result.counts, strict=True)])
    lines.append("Error matrix in estimated area proportions")
    lines += _table(["map", *names, "total"], [[name, *(f"{p:.4f}" for p in row), f"{sum(row):.4f}"]
                                               for name, row in zip(names, result.proportions, strict=True)]
                    + [["total", *(f"{c.proportion:.4f}" for c in result.estimates), "1.0000"]])
    lines.append(f"Overall accuracy {_share(result.overall_accuracy, result.overall_ci95)} (95% interval)")
    lines += _table(["class", "user's accuracy", "producer's accuracy", f"mapped area{in_unit}",
                     f"estimated area{in_unit}", "95% interval"],
                    [[c.name, _share(c.users_accuracy, c.users_ci95), _share(c.producers_accuracy, c.producers_ci95),
                      _number(c.mapped_area), _number(c.area), f"± {_number(c.area_ci95)}"]
                     for c in result.estimates])
    return lines


def print_assessment(result: AccuracyAssessment, unit: str) -> None:
    """Print the text report (``assess report`` and ``assess estimate``)."""
    typer.echo("\n".join(assessment_lines(result, unit)))
