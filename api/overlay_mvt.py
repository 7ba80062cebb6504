"""Overlay tiles as Mapbox Vector Tiles (``mapbox-vector-tile``): one layer, ``results``, with a square per result
tile carrying its ``label``, ``confidence``, ``uncertain`` (less confident than its job's ``--uncertain-below``) and
``z``/``x``/``y``, for clients that style or query features; with a class grouping (``?groups=NAME``) also its
``group``.

At the results' zoom and above, the tile holds the one result that covers it; below, every result tile under it,
down to ``MAX_ZOOMS_OUT`` zooms out (4,096 squares). Further out a tile would hold too many squares to be useful:
it is empty, and the PNG overlay's majority view takes over.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mapbox_vector_tile

from core.queries.overlay import OverlayRequest

LAYER = "results"
EXTENT = 4096
MAX_ZOOMS_OUT = 6


def overlay_mvt(rows: Sequence[Any], *, request: OverlayRequest) -> bytes:
    """The vector tile of ``vector_rows``' rows: squares in tile coordinates, y down, ``EXTENT`` units a side."""
    tiles = request.results_range()
    side = 1 << request.zooms_out
    cell = EXTENT // side
    features = []
    for x, y, label, confidence, uncertain, *group in rows:
        left, top = ((x - tiles.min_x) * cell, (y - tiles.min_y) * cell) if side > 1 else (0, 0)
        size = cell if side > 1 else EXTENT
        features.append({
            "geometry": f"POLYGON (({left} {top}, {left + size} {top}, {left + size} {top + size}, {left} "
                        f"{top + size}, {left} {top}))",
            "properties": {"label": label, "confidence": round(float(confidence), 4), "uncertain": bool(uncertain),
                           "z": tiles.zoom, "x": x, "y": y, **({"group": group[0]} if group else {})},
        })
    return bytes(mapbox_vector_tile.encode([{"name": LAYER, "features": features}],
                                           default_options={"extents": EXTENT, "y_coord_down": True}))
