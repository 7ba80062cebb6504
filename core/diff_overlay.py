"""The changed tiles of a diff (``core.diff``) as overlay tiles at any zoom: each drawn in its "to" class's colour.

An overlay of a diff is an overlay of job B's model (``core.queries.overlay.OverlayRequest``, at the finest zoom both
jobs have results at, with job B's grouping if any), whose rows are only the changed tiles, each with job B's class
(or group): so ``core.queries.overlay.overlay_grid`` and ``api/overlay_png.py`` draw it as they draw any overlay. A
change that is uncertain (either answer uncertain, either tile partial) comes out hatched, as an uncertain answer
does; far out a pixel shows the commonest "to" class of the changes under it, its alpha the share of the tiles under
it that changed (an uncertain change counting half).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from core.diff import DiffSide, joined, uncertain_change
from core.queries.overlay import BLOCK_LEVELS, OverlayRequest
from core.tiles import Tile


def diff_overlay_request(b: DiffSide, tile: Tile) -> OverlayRequest:
    """The overlay tile ``tile`` of a diff to job ``b``, in job B's classes (or groups): the "to" side names the
    colours (both sides have the same zooms, ``core.diff.diff_sides`` checks)."""
    return OverlayRequest(b.model, b.zooms[-1], tile, grouping=b.grouping)


def diff_overlay_rows(session: Session, a: DiffSide, b: DiffSide, *, request: OverlayRequest) -> list[Any]:
    """As ``core.queries.overlay.overlay_rows``, of the changed tiles only: ``(x, y, to, uncertain change)`` per
    tile, or far out ``(column, row, to, count, uncertain count)`` per pixel."""
    tiles = request.results_range()
    left, right, on = joined(a, b, tiles)
    before, after = a.names(left.c.label), b.names(right.c.label)
    unsure = uncertain_change(left, right)
    changed = select().select_from(left.join(right, on)).where(before != after)
    shift = request.zooms_out - BLOCK_LEVELS
    if shift <= 0:
        return list(session.execute(changed.add_columns(left.c.x, left.c.y, after, unsure)))
    column = (left.c.x - tiles.min_x).op(">>")(shift).label("column")
    row = (left.c.y - tiles.min_y).op(">>")(shift).label("row")
    counted = changed.add_columns(column, row, after, func.count(), func.sum(case((unsure, 1), else_=0)))
    return list(session.execute(counted.group_by(column, row, after)))
