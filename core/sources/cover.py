"""The tile cover of a region, for sources that cannot be listed (a tile server) or that have no tiles yet (a
raster): every tile of each zoom that meets the bbox or polygon, one column at a time, in chunks keyed ``(z, x)``
so that a resumed pass starts after the last finished column."""

from __future__ import annotations

from collections.abc import Iterator

from core.region import Region
from core.sources.base import Chunk, Key
from core.tiles import Tile


def cover(region: Region, *, after: Key | None = None, chunk_size: int = 4096) -> Iterator[Chunk]:
    """The chunks of ``region``'s cover; the region must have zooms and an extent (a bbox or a polygon)."""
    for zoom in sorted(region.zooms or ()):
        low, high = region.columns(zoom) or (0, -1)
        for x in range(low, high + 1):
            if after is not None and (zoom, x) <= (after[0], after[1]):
                continue
            rows = region.rows(zoom, x) or ()
            column = [Tile(zoom, x, y) for first, last in rows for y in range(first, last + 1)]
            for start in range(0, len(column), chunk_size):
                yield Chunk(key=(zoom, x), tiles=column[start : start + chunk_size], column=(zoom, x),
                            last=start + chunk_size >= len(column))
