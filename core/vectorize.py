"""Polygons from a job's tiles (``tileclass vectorize``, issue 29 part 1), in blocks of the tile grid.

Each zoom of a job is a grid of tiles: column ``x``, row ``y``. The grid is read in blocks of ``block`` x ``block``
tiles (one query each, on ``uq_tile_results_model_zxy``). In a block every tile becomes a cell of a label grid (0:
nothing there, or an uncertain tile left out) and ``rasterio.features.shapes`` (GDAL's polygonize) traces the
regions of equal label with 4-connectivity, so tiles that only touch at a corner stay apart and holes are kept. The
regions are rasterized back (``rasterio.features.rasterize``) to find which tiles each holds, so that its tile
count, area and confidences are sums over its own tiles: area is the sum of the tiles' exact WGS84 areas
(``core.tile_area``).

Geometry stays in tile units (x right, y down; integers at tile corners, so unions are exact) until a polygon is
done; then its corners become longitude and latitude, mercantile's own tile corners (so a polygon's edges are
exactly its tiles' ``Tile.bounds()``), and its rings are oriented as RFC 7946 asks (exterior counter-clockwise).

A region cut by a block edge is merged back: a piece that lies on an edge between two blocks waits (``pending`` in
``_zoom_pieces``) until the blocks on the other side are read, then is unioned (shapely) with the pieces of the same
label that share a stretch of that edge with it (a shared corner is not enough). Blocks are read row by row, so what
waits is at most the pieces on one row of block edges: memory stays bounded by the block size and the grid's width,
not by the job's size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import mercantile
import numpy as np
import shapely
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.bbox import TileRange
from core.queries import Selection
from core.queries.selections import extents
from core.schema import TileResult
from core.tile_area import tile_area_km2

BLOCK = 1024
UNCERTAIN = "uncertain"  # the class of uncertain tiles with ``keep_uncertain``
SHARES_EDGE = "****1****"  # DE-9IM: the boundaries meet along a line, not only at points
PART_ROWS = 50_000
FINISH_BATCH = 10_000  # polygons converted to longitude/latitude together


@dataclass(frozen=True)
class VectorizeOptions:
    """``group_of``: a tile's class to the name its polygon gets (a class grouping); ``keep_uncertain``: uncertain
    tiles form the class ``uncertain`` instead of being left out; ``min_area_m2``: smaller polygons are dropped."""

    block: int = BLOCK
    keep_uncertain: bool = False
    min_area_m2: float = 0.0
    group_of: Callable[[str], str] | None = None


@dataclass(frozen=True, slots=True)
class TilePolygon:
    """One region of edge-adjacent tiles of one class (or group), in EPSG:4326 longitude/latitude."""

    label: str
    geometry: shapely.Polygon
    tile_count: int
    area_m2: float
    mean_confidence: float
    min_confidence: float


@dataclass(slots=True)
class _Piece:
    """A region, or the part of one inside one block, in tile units, with its sums over its tiles."""

    code: int
    shape: Any
    count: int
    area_m2: float
    confidence_sum: float
    confidence_min: float


class _Codes(dict[str, int]):
    """Labels as the small integers of the label grid (0 is reserved for 'no tile'): a dict from a label to its
    code, whose missing labels are coded on first sight, so a block's labels are looked up at C speed."""

    def __init__(self, options: VectorizeOptions) -> None:
        super().__init__()
        self.options = options
        self.names: list[str] = []
        self.uncertain = self._code(UNCERTAIN) if options.keep_uncertain else 0  # the code of every uncertain tile

    def __missing__(self, label: str) -> int:
        code = self[label] = self._code(self.options.group_of(label) if self.options.group_of else label)
        return code

    def _code(self, name: str) -> int:
        if name not in self.names:
            self.names.append(name)
        return self.names.index(name) + 1


def vectorize_job(session: Session, *, selection: Selection, options: VectorizeOptions) -> Iterator[TilePolygon]:
    """The polygons of a job's results (``select_results(job_id=...)``), zoom by zoom, block row by block row."""
    codes = _Codes(options)
    for span, _ in extents(session, selection=selection):
        kept = (piece for piece in _zoom_pieces(session, selection, span, codes, options.block)
                if piece.area_m2 >= options.min_area_m2)
        while batch := list(islice(kept, FINISH_BATCH)):
            yield from _finished(batch, span.zoom, codes)


def _blocks(span: TileRange, block: int) -> Iterator[list[TileRange]]:
    for y0 in range(span.min_y, span.max_y + 1, block):
        yield [TileRange(span.zoom, x0, min(x0 + block - 1, span.max_x), y0, min(y0 + block - 1, span.max_y))
               for x0 in range(span.min_x, span.max_x + 1, block)]


def _zoom_pieces(session: Session, selection: Selection, span: TileRange, codes: _Codes,
                 block: int) -> Iterator[_Piece]:
    pending: list[_Piece] = []
    for row in _blocks(span, block):
        bottom = row[0].max_y + 1  # the edge below this row of blocks, in tile units
        for tiles in row:
            grid, confidence = _read_block(session, selection, tiles, codes)
            for piece in _block_pieces(grid, confidence, tiles):
                if _on_inner_edge(piece, tiles, span):
                    pending.append(piece)
                else:
                    yield piece
        merged = _merge(pending)
        pending = [piece for piece in merged if piece.shape.bounds[3] == bottom and bottom <= span.max_y]
        yield from (piece for piece in merged if not (piece.shape.bounds[3] == bottom and bottom <= span.max_y))
    assert not pending, "every piece is done after the last row of blocks"


def _read_block(session: Session, selection: Selection, tiles: TileRange,
                codes: _Codes) -> tuple[np.ndarray, np.ndarray]:
    """The block's label grid (int32, 0: no tile, or a tile left out) and each tile's confidence (float32)."""
    shape = (tiles.max_y - tiles.min_y + 1, tiles.max_x - tiles.min_x + 1)
    grid = np.zeros(shape, dtype=np.int32)
    confidence = np.zeros(shape, dtype=np.float32)
    assert selection.model is not None and selection.job_id is not None, "a job with results has its model"
    # Each column named (x IN ...): the index (model_hash, z, x, y) is sought once per column for the block's rows,
    # where a range of x would scan the job's whole height again for every row of blocks. The job is checked here,
    # not in SQL, where SQLite would take ix_tile_results_job instead and read all of the job's rows per block.
    stmt = select(TileResult.x, TileResult.y, TileResult.label, TileResult.confidence, TileResult.uncertain,
                  func.coalesce(TileResult.job_id, 0) == selection.job_id).where(
        TileResult.model_hash == selection.model.hash, TileResult.z == tiles.zoom,
        TileResult.x.in_(range(tiles.min_x, tiles.max_x + 1)), TileResult.y.between(tiles.min_y, tiles.max_y))
    result = session.connection().execute(stmt.execution_options(yield_per=PART_ROWS))
    for part in result.partitions():
        n = len(part)
        xs, ys, labels, confidences, uncertain, jobs = zip(*part, strict=True)
        mine = np.fromiter(jobs, dtype=bool, count=n)
        rows = np.fromiter(ys, dtype=np.int64, count=n)[mine] - tiles.min_y
        columns = np.fromiter(xs, dtype=np.int64, count=n)[mine] - tiles.min_x
        coded = np.fromiter(map(codes.__getitem__, labels), dtype=np.int32, count=n)
        coded[np.fromiter(uncertain, dtype=bool, count=n)] = codes.uncertain
        grid[rows, columns] = coded[mine]
        confidence[rows, columns] = np.fromiter(confidences, dtype=np.float32, count=n)[mine]
    return grid, confidence


def _block_pieces(grid: np.ndarray, confidence: np.ndarray, tiles: TileRange) -> list[_Piece]:
    from affine import Affine
    from rasterio import features

    transform = Affine(1, 0, tiles.min_x, 0, 1, tiles.min_y)  # a cell is one tile; coordinates in tile units
    found = list(features.shapes(grid, mask=grid > 0, connectivity=4, transform=transform))
    if not found:
        return []
    # Each region burnt back as its own number: a cell is burnt when its centre is inside, exact for these shapes.
    ids = features.rasterize(((geometry, index) for index, (geometry, _) in enumerate(found, start=1)),
                             out_shape=grid.shape, transform=transform, fill=0, dtype="int32").ravel()
    n = len(found) + 1
    row_area = np.array([tile_area_km2(tiles.zoom, tiles.min_x, y) * 1e6
                         for y in range(tiles.min_y, tiles.max_y + 1)])
    counts = np.bincount(ids, minlength=n)
    areas = np.bincount(ids, weights=np.repeat(row_area, grid.shape[1]), minlength=n)
    flat = confidence.ravel().astype(np.float64)
    sums = np.bincount(ids, weights=flat, minlength=n)
    lows = np.full(n, np.inf)
    np.minimum.at(lows, ids, flat)
    shapes = shapely.from_geojson([json.dumps(geometry) for geometry, _ in found])
    return [_Piece(int(value), shapes[i - 1], int(counts[i]), float(areas[i]), float(sums[i]), float(lows[i]))
            for i, (_, value) in enumerate(found, start=1)]


def _on_inner_edge(piece: _Piece, tiles: TileRange, span: TileRange) -> bool:
    """Whether the piece lies on an edge between its block and another (not on the outside of the grid)."""
    west, north, east, south = piece.shape.bounds
    return ((west == tiles.min_x > span.min_x) or (east == tiles.max_x + 1 <= span.max_x)
            or (north == tiles.min_y > span.min_y) or (south == tiles.max_y + 1 <= span.max_y))


def _merge(pieces: list[_Piece]) -> list[_Piece]:
    """Pieces of one label that share a stretch of edge, unioned into one (sums added, minimum kept)."""
    if len(pieces) < 2:
        return pieces
    shapes = np.array([piece.shape for piece in pieces], dtype=object)
    first, second = shapely.STRtree(shapes).query(shapes, predicate="touches")
    codes = np.array([piece.code for piece in pieces])
    keep = (first < second) & (codes[first] == codes[second])
    first, second = first[keep], second[keep]
    shared = shapely.relate_pattern(shapes[first], shapes[second], SHARES_EDGE)
    parent = list(range(len(pieces)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(first[shared].tolist(), second[shared].tolist(), strict=True):
        parent[root(a)] = root(b)
    members: dict[int, list[_Piece]] = {}
    for i, piece in enumerate(pieces):
        members.setdefault(root(i), []).append(piece)
    return [_joined(group) for group in members.values()]


def _joined(group: list[_Piece]) -> _Piece:
    if len(group) == 1:
        return group[0]
    shape = shapely.union_all([piece.shape for piece in group])
    assert shape.geom_type == "Polygon", "pieces that share edges form one region"
    return _Piece(group[0].code, shape, sum(p.count for p in group), sum(p.area_m2 for p in group),
                  sum(p.confidence_sum for p in group), min(p.confidence_min for p in group))


def _finished(pieces: list[_Piece], zoom: int, codes: _Codes) -> list[TilePolygon]:
    """The pieces as polygons in longitude/latitude, every corner of the batch converted at once."""

    def lonlat(xy: np.ndarray) -> np.ndarray:
        # Every corner is a tile's corner: mercantile's own numbers, once per distinct column and row,
        # so that the polygons' edges are exactly those of ``Tile.bounds()``.
        columns, column_of = np.unique(xy[:, 0], return_inverse=True)
        rows, row_of = np.unique(xy[:, 1], return_inverse=True)
        lons = np.array([_corner(int(x), zoom)[0] for x in columns])
        lats = np.array([_corner(int(y), zoom)[1] for y in rows])
        return np.column_stack([lons[column_of], lats[row_of]])

    shapes = np.array([piece.shape for piece in pieces], dtype=object)
    geometries = shapely.orient_polygons(shapely.transform(shapes, lonlat), exterior_cw=False)
    return [TilePolygon(codes.names[piece.code - 1], geometry, piece.count, piece.area_m2,
                        piece.confidence_sum / piece.count, piece.confidence_min)
            for piece, geometry in zip(pieces, geometries, strict=True)]


def _corner(i: int, zoom: int) -> tuple[float, float]:
    """Longitude of column edge ``i`` and latitude of row edge ``i`` (edge ``2**zoom`` is the grid's east/south)."""
    if i < 2**zoom:
        west, _, _, north = mercantile.bounds(i, i, zoom)
        return west, north
    _, south, east, _ = mercantile.bounds(i - 1, i - 1, zoom)
    return east, south
