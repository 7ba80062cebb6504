"""Writing polygons (``core.vectorize.TilePolygon``) to files that GIS tools open, through pyogrio (GDAL).

Formats: GeoPackage (``gpkg``), FlatGeobuf (``fgb``) and GeoJSON (``geojson``), named by ``--format`` or else by the
file's suffix. One layer, named after the file, of Polygons in EPSG:4326 (longitude, latitude) with the fields:

- ``class`` (``group`` with a class grouping): what the polygon's tiles are;
- ``tile_count``: how many tiles it holds; ``area_m2``: the sum of their areas on the WGS84 ellipsoid;
- ``mean_confidence``, ``min_confidence``: over its tiles.

A region of edge-adjacent tiles is always one Polygon (with holes where it has them): tiles that only touch at a
corner are separate regions, so no feature needs a MultiPolygon. Features are written ``CHUNK`` at a time
(pyogrio's append), to ``FILE.partial.SUFFIX`` renamed to ``FILE`` when complete, so memory holds one chunk and a
failed run leaves no truncated file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import TileclassError

if TYPE_CHECKING:
    from core.vectorize import TilePolygon

DRIVERS = {"gpkg": "GPKG", "fgb": "FlatGeobuf", "geojson": "GeoJSON"}
SUFFIXES = {".gpkg": "gpkg", ".fgb": "fgb", ".geojson": "geojson", ".json": "geojson"}
EXTRA = "vectorize needs the 'raster' extra (rasterio, shapely and pyogrio): pip install 'tileclass[raster]'"
CHUNK = 20_000


class PolygonFileError(TileclassError):
    """An output format that is unknown or does not match the file's suffix, or a host without the extra."""


def check_extra() -> None:
    """``PolygonFileError`` naming the ``raster`` extra unless rasterio, shapely and pyogrio are installed."""
    try:
        import pyogrio  # noqa: F401
        import rasterio  # noqa: F401
        import shapely  # noqa: F401
    except ImportError:
        raise PolygonFileError(EXTRA) from None


def polygon_format(path: Path, fmt: str | None) -> str:
    """The format to write ``path`` in: ``fmt`` if given (checked against the suffix), else the suffix's."""
    by_suffix = SUFFIXES.get(path.suffix.lower())
    if fmt is not None:
        if fmt not in DRIVERS:
            raise PolygonFileError(f"unknown format {fmt!r}: choose one of {', '.join(DRIVERS)}")
        if by_suffix is not None and by_suffix != fmt:
            raise PolygonFileError(f"--format {fmt} does not match {path.name!r}: name it *.{fmt} or leave "
                                   "--format out")
        return fmt
    if by_suffix is None:
        raise PolygonFileError(f"cannot tell the format of {path.name!r}: name it *.gpkg, *.fgb or *.geojson, or "
                               f"give --format ({', '.join(DRIVERS)})")
    return by_suffix


def write_polygons(polygons: Iterable[TilePolygon], path: Path, *, fmt: str, label_field: str = "class",
                   chunk: int = CHUNK) -> int:
    """Write every polygon to ``path`` (replaced when complete); returns how many were written."""
    partial = partial_path(path)
    partial.unlink(missing_ok=True)
    written = 0
    try:
        for part in _chunks(iter(polygons), chunk):
            _write(partial, part, fmt=fmt, label_field=label_field, append=written > 0, layer=path.stem)
            written += len(part)
        if written == 0:  # an empty layer still opens in GIS tools, with its fields
            _write(partial, [], fmt=fmt, label_field=label_field, append=False, layer=path.stem)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return written


def partial_path(path: Path) -> Path:
    """Where ``path`` is written until complete: ``out.partial.gpkg`` (GDAL's GPKG driver wants its suffix)."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def _chunks(polygons: Iterator[TilePolygon], size: int) -> Iterator[list[TilePolygon]]:
    while part := list(islice(polygons, size)):
        yield part


def _write(path: Path, part: list[TilePolygon], *, fmt: str, label_field: str, append: bool, layer: str) -> None:
    import numpy as np
    import shapely
    from pyogrio.raw import write

    geometry = shapely.to_wkb(np.array([p.geometry for p in part], dtype=object))
    fields: dict[str, Any] = {
        label_field: np.array([p.label for p in part], dtype=object),
        "tile_count": np.array([p.tile_count for p in part], dtype=np.int64),
        "area_m2": np.array([p.area_m2 for p in part], dtype=np.float64),
        "mean_confidence": np.array([p.mean_confidence for p in part], dtype=np.float64),
        "min_confidence": np.array([p.min_confidence for p in part], dtype=np.float64),
    }
    write(str(path), geometry, list(fields.values()), fields=list(fields), geometry_type="Polygon",
          crs="EPSG:4326", driver=DRIVERS[fmt], append=append, layer=layer if fmt != "geojson" else None)
