"""What ``tileclass query tile --json`` prints and ``/api/tiles/{z}/{x}/{y}`` answers: one document per tile, built
once here so the command line and the HTTP API never drift apart.

The document is the tile's stored result (``"classified": true`` and its label, confidence and top classes), or
its empty record (``"empty": true`` and why), or neither (``"classified": false, "empty": false``), always for one
model: the one asked for, else the latest registered model with a record of the tile (``core.queries.lookups``).

A tile with neither also gets ``"results_extent"``: per zoom, where the model's results are (``core.queries.extent``),
from which the CLI and the API's 404 say where to look instead.

Beside it, ``"corrections"`` lists the labels people gave the tile (``tileclass correct``), newest first, whatever
model they were checked against; the newest one is the tile's corrected label. A correction never changes the
model's result, so a corrected tile shows both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core.models.lookups import find_model
from core.queries.corrections import CorrectionAnswer, tile_corrections
from core.queries.extent import ResultsExtent, results_extent
from core.queries.lookups import empty_result, tile_result
from core.queries.types import EmptyAnswer, TileAnswer
from core.tiles import Tile


@dataclass(frozen=True, slots=True)
class TileReport:
    """What is known of one tile for one model: its result, else its empty record, else nothing."""

    tile: Tile
    model_hash: str | None  # the model asked for (None: any model)
    answer: TileAnswer | None
    empty: EmptyAnswer | None
    corrections: tuple[CorrectionAnswer, ...] = ()  # newest first
    results_extent: ResultsExtent | None = None  # where the model's results are, for a tile with none

    def hint(self, *, point: tuple[float, float] | None = None) -> str | None:
        """Where to look instead, for a tile not found (``point``: it was asked for as the tile under it)."""
        return None if self.results_extent is None else self.results_extent.hint(self.tile, point=point)

    @property
    def found(self) -> bool:
        return self.answer is not None or self.empty is not None

    def as_dict(self, *, top_k: int = 3) -> dict[str, Any]:
        corrections = {"corrections": [correction.as_dict() for correction in self.corrections]}
        if self.answer is not None:
            return {"classified": True, "empty": False, **self.answer.as_dict(top_k=top_k), **corrections}
        if self.empty is not None:
            return {"classified": False, **self.empty.as_dict(), **corrections}
        records = {"results_extent": self.results_extent.as_list()} if self.results_extent is not None else {}
        return {"tile": str(self.tile), "classified": False, "empty": False, "model": self.model_hash, **records,
                **corrections}


def report_tile(session: Session, *, tile: Tile, model_ref: str | None = None) -> TileReport:
    """Look ``tile`` up for the model ``model_ref`` names (hash, prefix or name; None: the latest with a record)."""
    digest = find_model(session, ref=model_ref).hash if model_ref else None
    answer = tile_result(session, tile=tile, model_hash=digest)
    empty = empty_result(session, tile=tile, model_hash=digest) if answer is None else None
    missed = answer is None and empty is None and tile.z is not None
    return TileReport(tile, digest, answer, empty, tuple(tile_corrections(session, tile=tile)),
                      results_extent(session, model_hash=digest) if missed else None)
