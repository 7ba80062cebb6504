"""CSV files of tiles that people fill in (``correct --file``'s corrections, ``assess label``'s reference labels).

A header names the columns (in any order, any case; other columns are ignored; a UTF-8 byte-order mark from a
spreadsheet is fine), then one tile per row. Rows are numbered as a spreadsheet shows them, the header being row 1,
so an error names its row (``sample.csv row 7: …``); each kind of file raises its own error class.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from core.errors import TileclassError
from core.tiles import Tile


class CsvRow(NamedTuple):
    values: list[str]
    columns: dict[str, int]  # where each asked column is among the values
    number: int  # as a spreadsheet numbers it, the header being 1
    where: str  # "NAME row N: ", the start of an error about it


def tile_rows(path: Path, columns: tuple[str, ...], *, error: type[TileclassError], what: str) -> Iterator[CsvRow]:
    """Each non-blank row of ``path``; ``what`` is the columns' description in the header's error (``"z, x, y and
    label"``)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            found = {column.strip().lower(): index for index, column in enumerate(header)}
            missing = [column for column in columns if column not in found]
            if missing:
                raise error(f"{path.name} row 1 must be a header naming the columns {what} (missing "
                            f"{', '.join(missing)}; found {', '.join(h.strip() for h in header) or 'nothing'})")
            where = {column: found[column] for column in columns}
            for row in reader:
                if any(value.strip() for value in row):  # else a blank line
                    yield CsvRow(row, where, reader.line_num, f"{path.name} row {reader.line_num}: ")
    except UnicodeDecodeError as exc:
        raise error(f"{path.name} is not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise error(f"{path.name} is not a readable CSV file ({exc})") from None


def tile_at(row: CsvRow, *, error: type[TileclassError]) -> Tile:
    """The row's tile from its z, x and y columns (``error`` naming the row when it has none)."""
    values, columns, where = row.values, row.columns, row.where
    if len(values) <= max(columns.values()):
        raise error(f"{where}has {len(values)} value{'s' if len(values) != 1 else ''}, fewer than the header's "
                    "columns")
    numbers = []
    for column in ("z", "x", "y"):
        value = values[columns[column]].strip()
        try:
            numbers.append(int(value))
        except ValueError:
            raise error(f"{where}{column} {value!r} is not a whole number") from None
    try:
        return Tile.checked(numbers[0], numbers[1], numbers[2])
    except TileclassError as exc:
        raise error(f"{where}{exc}") from None
