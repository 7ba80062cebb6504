"""The sample's CSV file (``tileclass assess sample`` writes it, ``tileclass assess label`` reads it back filled in).

Columns ``z,x,y,reference``, the tiles in the order a reviewer labels them (the contact sheet's numbers). Reading
takes the columns in any order and case (other columns are ignored; a UTF-8 byte-order mark from a spreadsheet is
fine). A row whose reference is blank is a tile not labelled yet and is skipped. Rows are numbered as a spreadsheet
shows them, the header being row 1, so an error names the row (``sample.csv row 7: …``) and nothing is recorded.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from core.assessment import AssessmentError
from core.assessment.store import ReferenceLabel, SampleTile
from core.errors import TileclassError
from core.tiles import Tile

COLUMNS = ("z", "x", "y", "reference")


def write_sample_csv(path: Path, tiles: Iterable[SampleTile]) -> None:
    """``path`` with the header and one row per tile, its recorded reference filled in where there is one."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for tile in tiles:
            writer.writerow([tile.z, tile.x, tile.y, tile.reference or ""])


def read_labels(path: Path) -> list[ReferenceLabel]:
    """The filled-in rows of a sample CSV (``AssessmentError`` naming the row for a malformed one)."""
    if not path.is_file():
        raise AssessmentError(f"labels file {str(path)!r} does not exist")
    labels: list[ReferenceLabel] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            columns = _columns(next(reader, []), path.name)
            for row in reader:
                if not any(value.strip() for value in row):
                    continue  # a blank line
                label = _row(row, columns, f"{path.name} row {reader.line_num}: ")
                if label is not None:
                    labels.append(label)
    except UnicodeDecodeError as exc:
        raise AssessmentError(f"{path.name} is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise AssessmentError(f"{path.name} is not a readable CSV file ({exc})") from None
    return labels


def _columns(header: list[str], name: str) -> dict[str, int]:
    found = {column.strip().lower(): index for index, column in enumerate(header)}
    missing = [column for column in COLUMNS if column not in found]
    if missing:
        raise AssessmentError(f"{name} row 1 must be a header naming the columns z, x, y and reference (missing "
                              f"{', '.join(missing)}; found {', '.join(h.strip() for h in header) or 'nothing'})")
    return {column: found[column] for column in COLUMNS}


def _row(row: list[str], columns: dict[str, int], where: str) -> ReferenceLabel | None:
    reference = row[columns["reference"]].strip() if len(row) > columns["reference"] else ""
    if not reference:
        return None  # not labelled yet
    if len(row) <= max(columns.values()):
        raise AssessmentError(f"{where}has {len(row)} value{'s' if len(row) != 1 else ''}, fewer than the header's "
                              "columns")
    numbers = []
    for column in ("z", "x", "y"):
        value = row[columns[column]].strip()
        try:
            numbers.append(int(value))
        except ValueError:
            raise AssessmentError(f"{where}{column} {value!r} is not a whole number") from None
    try:
        tile = Tile.checked(numbers[0], numbers[1], numbers[2])
    except TileclassError as exc:
        raise AssessmentError(f"{where}{exc}") from None
    return ReferenceLabel(tile, reference, where)
