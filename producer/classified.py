"""Drop walked tiles that already have a result for the model, with a few indexed queries, never one per tile.

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
from core.schema import TileResult
from core.tiles import Tile
from core.walk import Chunk

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
            done = set(self._scalars(select(TileResult.y).where(
                TileResult.model_hash == self.model_hash, TileResult.z == z, TileResult.x == x,
                TileResult.y.between(min(ys), max(ys)),  # type: ignore[type-var]
            )))
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
                done.update((z, x, y) for x, y in self._rows(select(TileResult.x, TileResult.y).where(
                    TileResult.model_hash == self.model_hash, TileResult.z == z,
                    tuple_(TileResult.x, TileResult.y).in_(part),
                )))
        return [tile for tile in tiles if tile[:3] not in done] if done else tiles

    def _by_path(self, tiles: list[Tile]) -> list[Tile]:
        if not self._any_results(None):
            return tiles
        done: set[str] = set()
        for part in _parts([tile.path for tile in tiles]):
            done.update(self._scalars(select(TileResult.path).where(
                TileResult.model_hash == self.model_hash, TileResult.z.is_(None),
                TileResult.root_name == self.source_name, TileResult.path.in_(part),
            )))
        return [tile for tile in tiles if tile.path not in done] if done else tiles

    def _any_results(self, zoom: int | None) -> bool:
        known = self._zoom_has_results.get(zoom)
        if known is None:
            query = select(TileResult.id).where(TileResult.model_hash == self.model_hash)
            if zoom is None:
                query = query.where(TileResult.z.is_(None), TileResult.root_name == self.source_name)
            else:
                query = query.where(TileResult.z == zoom)
                columns = self.region.columns(zoom) if self.region is not None else None
                if columns is not None:
                    query = query.where(TileResult.x.between(*columns))
            known = self._zoom_has_results[zoom] = bool(self._scalars(query.limit(1)))
        return known

    def _rows(self, query: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(query))

    def _scalars(self, query: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.scalars(query))


def _parts(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), LOOKUP_ROWS):
        yield items[start : start + LOOKUP_ROWS]
