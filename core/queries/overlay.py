"""One model's results as map overlay tiles: which class colours each part of an overlay tile of any zoom.

An overlay tile ``z/x/y`` over results stored at zoom ``R`` (the results' zoom) is a grid of cells:

- ``z >= R``: one cell, the class of the result tile at ``R`` that contains it (the tile itself when ``z == R``);
- ``R - 8 <= z < R``: ``2**dz`` cells a side (``dz = R - z``), one per result tile under it, each a block of
  ``256 / 2**dz`` pixels: at two zooms out a 4 x 4 grid of 64 px blocks;
- ``z < R - 8``: a block would be smaller than a pixel, so the grid is 256 x 256 pixels and each shows the
  majority class of the ``4**(dz - 8)`` result tiles under it, with ``alpha`` the share of them classified, an
  uncertain answer counting half.

Uncertain answers (``tile_results.uncertain``: less confident than their job's bound) are marked cell by cell in
``uncertain`` down to 8 zooms out, which ``api/overlay_png.py`` draws hatched.

Every case is one range query on ``uq_tile_results_model_zxy`` (``model_hash = ? AND z = ? AND x BETWEEN ...
AND y BETWEEN ...``). The far-out case groups in the database (``GROUP BY x >> s, y >> s, label``), so a
region of millions of results is counted where it is stored instead of being loaded row by row.

Cells hold class codes: 0 for no result, ``i + 1`` for the class at ``i`` in ``classes`` (the model's class list,
then any stored label it does not list, as ``render`` does). With a class grouping (``core.class_groups``) the
cells hold groups instead, in the grouping's order: the queries group labels in the database (a ``CASE``), so far
out a pixel shows its majority group, not the group of its majority class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Integer, cast, false, func, select, true
from sqlalchemy.orm import Session

from core.bbox import TileRange
from core.class_groups import ClassGrouping
from core.models.info import ModelInfo
from core.schema import TileResult
from core.tiles import Tile

OVERLAY_PX = 256
BLOCK_LEVELS = 8  # 2**8 = 256: beyond this many zooms out a result tile is less than one pixel


@dataclass(frozen=True, slots=True)
class OverlayRequest:
    """An overlay tile of one model's results at ``results_zoom``, optionally only some classes, and only the
    uncertain answers (``uncertain`` True) or none of them (False)."""

    model: ModelInfo
    results_zoom: int
    tile: Tile
    labels: tuple[str, ...] = ()
    uncertain: bool | None = None
    grouping: ClassGrouping | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        """What the cells' codes stand for: the model's classes, or the grouping's groups."""
        return tuple(self.grouping.groups) if self.grouping is not None else tuple(self.model.class_names)

    def label_column(self) -> ColumnElement[str]:
        """A result's class, or its group with a grouping."""
        label: ColumnElement[str] = TileResult.label  # type: ignore[assignment]
        return self.grouping.expression(label) if self.grouping is not None else label

    @property
    def zooms_out(self) -> int:
        """How many zooms the tile lies above the results (0 at or below their zoom)."""
        return max(self.results_zoom - int(self.tile.z or 0), 0)

    @property
    def cells(self) -> int:
        """Cells a side of the tile's grid."""
        return 1 << min(self.zooms_out, BLOCK_LEVELS)

    def results_range(self) -> TileRange:
        """The result tiles at ``results_zoom`` that the overlay tile covers (or lies in)."""
        z, x, y = self.tile.xyz()
        if z >= self.results_zoom:
            shift = z - self.results_zoom
            return TileRange(self.results_zoom, x >> shift, x >> shift, y >> shift, y >> shift)
        side = 1 << (self.results_zoom - z)
        return TileRange(self.results_zoom, x * side, (x + 1) * side - 1, y * side, (y + 1) * side - 1)


@dataclass(frozen=True)
class OverlayGrid:
    """The classes of an overlay tile's cells (``codes``, ``cells`` x ``cells``), which of them are uncertain
    answers (``uncertain``, booleans, down to 8 zooms out) and, further out, the share of each pixel's result tiles
    that are classified, an uncertain one counting half (``alpha``, 0..255)."""

    codes: np.ndarray
    classes: tuple[str, ...]
    alpha: np.ndarray | None = None
    uncertain: np.ndarray | None = None

    @property
    def is_blank(self) -> bool:
        return not bool(self.codes.any())


def results_zoom(session: Session, *, model_hash: str) -> int | None:
    """The finest zoom of a model's results with coordinates, or None when it has none (an index lookup)."""
    found = session.scalar(select(func.max(TileResult.z)).where(TileResult.model_hash == model_hash,
                                                                TileResult.z.is_not(None)))
    return None if found is None else int(found)


def overlay_rows(session: Session, *, request: OverlayRequest) -> list[Any]:
    """The query: ``(x, y, label, uncertain)`` per result tile, or far out ``(column, row, label, count,
    uncertain count)`` per pixel."""
    tiles, where, label = request.results_range(), _under(request), request.label_column()
    shift = request.zooms_out - BLOCK_LEVELS
    if shift <= 0:
        return list(session.execute(select(TileResult.x, TileResult.y, label, TileResult.uncertain).where(*where)))
    column = (TileResult.x - tiles.min_x).op(">>")(shift).label("column")
    row = (TileResult.y - tiles.min_y).op(">>")(shift).label("row")
    unsure = func.sum(cast(TileResult.uncertain, Integer))  # cheaper than COUNT(*) FILTER on SQLite
    return list(session.execute(select(column, row, label, func.count(), unsure).where(*where)
                                .group_by(column, row, label)))


def vector_rows(session: Session, *, request: OverlayRequest) -> list[Any]:
    """``(x, y, label, confidence, uncertain)`` of each result tile under (or covering) the overlay tile, for vector
    tiles, and with a grouping its ``group`` last."""
    columns: list[Any] = [TileResult.x, TileResult.y, TileResult.label, TileResult.confidence, TileResult.uncertain]
    if request.grouping is not None:
        columns.append(request.label_column())
    return list(session.execute(select(*columns).where(*_under(request))))


def _under(request: OverlayRequest) -> list[ColumnElement[bool]]:
    """The range-scan conditions on ``uq_tile_results_model_zxy`` for the results under the overlay tile."""
    tiles = request.results_range()
    where = [TileResult.model_hash == request.model.hash, TileResult.z == tiles.zoom,
             TileResult.x.between(tiles.min_x, tiles.max_x), TileResult.y.between(tiles.min_y, tiles.max_y)]
    if request.labels:
        where.append(TileResult.label.in_(request.labels))
    if request.uncertain is not None:
        where.append(TileResult.uncertain.is_(true() if request.uncertain else false()))
    return where


def overlay_grid(rows: Sequence[Any], *, request: OverlayRequest) -> OverlayGrid:
    """The aggregation: ``overlay_rows``' rows as the tile's cells."""
    classes = list(request.classes)
    codes_of = {label: i + 1 for i, label in enumerate(classes)}
    labels = [row[2] for row in rows]
    for label in dict.fromkeys(labels):
        if label not in codes_of:  # stored under a label the model does not list: give it the next colour
            classes.append(label)
            codes_of[label] = len(classes)
    side = request.cells
    codes = np.zeros((side, side), dtype=np.int32)
    if not rows:
        return OverlayGrid(codes, tuple(classes))
    coded = np.fromiter((codes_of[label] for label in labels), dtype=np.int32, count=len(labels))
    xs = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    ys = np.fromiter((row[1] for row in rows), dtype=np.int64, count=len(rows))
    if request.zooms_out <= BLOCK_LEVELS:
        tiles = request.results_range()
        unsure = np.fromiter((bool(row[3]) for row in rows), dtype=bool, count=len(rows))
        uncertain = np.zeros((side, side), dtype=bool)
        if side == 1:
            codes[0, 0], uncertain[0, 0] = coded[0], unsure[0]
        else:
            codes[ys - tiles.min_y, xs - tiles.min_x] = coded
            uncertain[ys - tiles.min_y, xs - tiles.min_x] = unsure
        return OverlayGrid(codes, tuple(classes), uncertain=uncertain)
    counts = np.fromiter((row[3] for row in rows), dtype=np.int64, count=len(rows))
    unsure_counts = np.fromiter((row[4] for row in rows), dtype=np.int64, count=len(rows))
    return _majority(xs, ys, coded, counts, unsure_counts, side=side,
                     under=4 ** (request.zooms_out - BLOCK_LEVELS), classes=tuple(classes))


def _majority(columns: np.ndarray, rows: np.ndarray, coded: np.ndarray, counts: np.ndarray, unsure: np.ndarray, *,
              side: int, under: int, classes: tuple[str, ...]) -> OverlayGrid:
    """Per pixel, the class with most result tiles (ties: the class listed first) and the share classified, an
    uncertain answer counting half."""
    pixel = rows * side + columns
    order = np.lexsort((coded, -counts, pixel))  # by pixel, then most tiles first, then the class listed first
    pixel, coded, counts = pixel[order], coded[order], counts[order]
    first = np.ones(len(pixel), dtype=bool)
    first[1:] = pixel[1:] != pixel[:-1]
    codes = np.zeros(side * side, dtype=np.int32)
    codes[pixel[first]] = coded[first]
    classified = np.bincount(pixel, weights=counts - unsure[order] / 2, minlength=side * side)
    alpha = np.clip(np.rint(255 * classified / under), 0, 255).astype(np.uint8)
    return OverlayGrid(codes.reshape(side, side), classes, alpha.reshape(side, side))
