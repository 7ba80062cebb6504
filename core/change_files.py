"""The changed tiles of a diff (``core.diff.ChangedTile``) as files a GIS opens, through pyogrio (GDAL).

``tileclass diff --out DIR`` writes ``DIR/changes.gpkg`` (layer ``changes``) and ``DIR/changes.geojson``: one Polygon
per changed tile (its square in EPSG:4326 longitude/latitude, corners from mercantile) with the fields

- ``z``, ``x``, ``y``: the tile;
- ``from_class``, ``to_class`` (``from_group``, ``to_group`` with class groupings): job A's and job B's answer;
- ``confidence_a``, ``confidence_b``: both answers' confidences;
- ``change``: ``confident``, or ``uncertain`` where either answer is uncertain or either tile partial.

Both files are written from one pass over the changes, ``CHUNK`` tiles at a time (pyogrio's append), each to
``*.partial.*`` renamed when complete, as ``core.polygon_files`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from core.diff import CONFIDENT, UNCERTAIN, ChangedTile
from core.errors import TileclassError
from core.polygon_files import partial_path

CHUNK = 20_000
FILES = {"changes.gpkg": "GPKG", "changes.geojson": "GeoJSON"}
EXTRA = "diff --out needs the 'raster' extra (shapely and pyogrio): pip install 'tileclass[raster]'"


def check_extra() -> None:
    """A one-line ``TileclassError`` naming the ``raster`` extra unless shapely and pyogrio are installed."""
    try:
        import pyogrio  # noqa: F401
        import shapely  # noqa: F401
    except ImportError:
        raise TileclassError(EXTRA) from None


def write_changes(changes: Iterable[ChangedTile], folder: Path, *, grouped: bool = False,
                  chunk: int = CHUNK) -> dict[str, Path]:
    """Write every changed tile to ``folder``'s GeoPackage and GeoJSON; returns the files by name."""
    paths = {name: folder / name for name in FILES}
    for path in paths.values():
        partial_path(path).unlink(missing_ok=True)
    written = 0
    try:
        for part in _chunks(iter(changes), chunk):
            for name, path in paths.items():
                _write(partial_path(path), part, driver=FILES[name], grouped=grouped, append=written > 0)
            written += len(part)
        if written == 0:  # an empty layer still opens in GIS tools, with its fields
            for name, path in paths.items():
                _write(partial_path(path), [], driver=FILES[name], grouped=grouped, append=False)
    except BaseException:
        for path in paths.values():
            partial_path(path).unlink(missing_ok=True)
        raise
    for path in paths.values():
        partial_path(path).replace(path)
    return paths


def _chunks(changes: Iterator[ChangedTile], size: int) -> Iterator[list[ChangedTile]]:
    while part := list(islice(changes, size)):
        yield part


def _write(path: Path, part: list[ChangedTile], *, driver: str, grouped: bool, append: bool) -> None:
    import mercantile
    import numpy as np
    import shapely
    from pyogrio.raw import write

    boxes = [shapely.box(*mercantile.bounds(t.x, t.y, t.z)) for t in part]
    geometry = shapely.to_wkb(np.array(boxes, dtype=object))
    kind = "group" if grouped else "class"
    fields: dict[str, Any] = {
        "z": np.array([t.z for t in part], dtype=np.int32),
        "x": np.array([t.x for t in part], dtype=np.int64),
        "y": np.array([t.y for t in part], dtype=np.int64),
        f"from_{kind}": np.array([t.before for t in part], dtype=object),
        f"to_{kind}": np.array([t.after for t in part], dtype=object),
        "confidence_a": np.array([t.confidence_a for t in part], dtype=np.float64),
        "confidence_b": np.array([t.confidence_b for t in part], dtype=np.float64),
        "change": np.array([UNCERTAIN if t.uncertain else CONFIDENT for t in part], dtype=object),
    }
    write(str(path), geometry, list(fields.values()), fields=list(fields), geometry_type="Polygon",
          crs="EPSG:4326", driver=driver, append=append, layer="changes" if driver != "GeoJSON" else None)
