"""Which walked tiles have no result yet for the model (a publishing pass drops the others), with a few indexed
queries, never one per tile.

"A result" is a row in ``tile_results`` or in ``empty_tiles`` (a tile found empty was tried, like a classified one;
``--force`` tries it again). Each query below runs on both tables.

- A leaf directory that fixes ``(z, x)`` (an XYZ/TMS column) costs one range query per chunk:
  ``SELECT y … WHERE model_hash = ? AND z = ? AND x = ? AND y BETWEEN ? AND ?`` on ``uq_tile_results_model_zxy``.
- Tiles from a flat folder (``{x}-{y}-{z}.jpg``) are looked up per chunk with ``(x, y) IN (…)`` per zoom.
- Tiles without coordinates (``plain``) are looked up by ``path IN (…)`` within their root.

Before any of that, one ``LIMIT 1`` query per zoom asks whether the model has any result there at all; a first
run over a fresh region therefore costs one query per zoom. Every query runs in its own short transaction, so a
producer never holds a SQLite lock that workers are waiting for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, select, tuple_

from core.region import Region
from core.schema import EmptyTile, TileResult
from core.sources.base import Chunk
from core.tiles import Tile

TABLES = (TileResult, EmptyTile)
LOOKUP_ROWS = 300  # tuples per IN (…): well under SQLite's and PostgreSQL's parameter limits


class ClassifiedFilter:
    """Remembers per zoom whether any result exists; answers which tiles of a chunk are still to classify."""

    def __init__(self, engine: Engine, *, model_hash: str, source_name: str, region: Region | None) -> None:
        self.engine, self.model_hash, self.source_name, self.region = engine, model_hash, source_name, region
        self._zoom_has_results: dict[int | None, bool] = {}

    def unclassified(self, chunk: Chunk) -> list[Tile]:
        """The tiles of ``chunk`` without a result for the model, in their original order."""
        tiles = chunk.tiles
        if not tiles:
            return tiles
        if chunk.column is not None:
            z, x = chunk.column
            if not self._any_results(z):
                return tiles
            ys = [tile.y for tile in tiles]
            done = set(self._scalars(*(select(table.y).where(
                table.model_hash == self.model_hash, table.z == z, table.x == x,
                table.y.between(min(ys), max(ys)),  # type: ignore[type-var]
            ) for table in TABLES)))
            return [tile for tile in tiles if tile.y not in done]
        if tiles[0].z is None:
            return self._by_path(tiles)
        return self._by_coordinates(tiles)

    def _by_coordinates(self, tiles: list[Tile]) -> list[Tile]:
        by_zoom: dict[int, list[tuple[Any, Any]]] = defaultdict(list)
        for z, x, y, _ in tiles:
            by_zoom[z].append((x, y))  # type: ignore[index]
        done: set[tuple[Any, Any, Any]] = set()
        for z, pairs in by_zoom.items():
            if not self._any_results(z):
                continue
            for part in _parts(pairs):
                done.update((z, x, y) for x, y in self._rows(*(select(table.x, table.y).where(
                    table.model_hash == self.model_hash, table.z == z, tuple_(table.x, table.y).in_(part),
                ) for table in TABLES)))
        return [tile for tile in tiles if tile[:3] not in done] if done else tiles

    def _by_path(self, tiles: list[Tile]) -> list[Tile]:
        if not self._any_results(None):
            return tiles
        done: set[str] = set()
        for part in _parts([tile.path for tile in tiles]):
            done.update(self._scalars(*(select(table.path).where(
                table.model_hash == self.model_hash, table.z.is_(None), table.source_name == self.source_name,
                table.path.in_(part),
            ) for table in TABLES)))
        return [tile for tile in tiles if tile.path not in done] if done else tiles

    def _any_results(self, zoom: int | None) -> bool:
        known = self._zoom_has_results.get(zoom)
        if known is None:
            queries = []
            for table in TABLES:
                query = select(table.id).where(table.model_hash == self.model_hash)
                if zoom is None:
                    query = query.where(table.z.is_(None), table.source_name == self.source_name)
                else:
                    query = query.where(table.z == zoom)
                    columns = self.region.columns(zoom) if self.region is not None else None
                    if columns is not None:
                        query = query.where(table.x.between(*columns))
                queries.append(query.limit(1))
            known = self._zoom_has_results[zoom] = bool(self._scalars(*queries))
        return known

    def _rows(self, *queries: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return [row for query in queries for row in connection.execute(query)]

    def _scalars(self, *queries: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return [value for query in queries for value in connection.scalars(query)]


def _parts(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), LOOKUP_ROWS):
        yield items[start : start + LOOKUP_ROWS]
