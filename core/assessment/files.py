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
from core.tile_csv import tile_at, tile_rows

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
    for row in tile_rows(path, COLUMNS, error=AssessmentError, what="z, x, y and reference"):
        at = row.columns["reference"]
        reference = row.values[at].strip() if len(row.values) > at else ""
        if reference:  # else not labelled yet
            labels.append(ReferenceLabel(tile_at(row, error=AssessmentError), reference, row.where))
    return labels
