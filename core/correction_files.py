"""Files of corrections for ``tileclass correct --file``: CSV rows of tiles, or GeoJSON polygons of one label each.

CSV: a header naming the columns ``z``, ``x``, ``y`` and ``label`` (in any order, any case; other columns are
ignored; a UTF-8 byte-order mark from a spreadsheet is fine), then one tile per row. Rows are numbered as a
spreadsheet shows them, the header being row 1. A tile listed twice with two labels is an error; twice with the
same label, once.

GeoJSON: a FeatureCollection (or one Feature) of Polygon or MultiPolygon features, each with a ``label``
property. Each feature takes the tiles of ``zoom`` that it covers, as a region's polygon does (``core.region``:
every tile whose interior meets it, the cover ``core.sources.cover`` enumerates). A tile covered by features of
two labels (along a shared edge) takes the label whose features cover the larger part of it.

Either way the whole file is checked before anything is recorded: a bad row or feature is one line naming it
(``corrections.csv row 7: …``, ``areas.geojson feature 3: …``) and nothing of the file is imported.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import mercantile

from core.corrections import class_of
from core.errors import TileclassError
from core.models.info import ModelInfo
from core.region import GeoJsonArea, Region
from core.sources.cover import cover
from core.tile_csv import tile_at, tile_rows
from core.tiles import Tile

COLUMNS = ("z", "x", "y", "label")
MAX_TILES = 1_000_000  # a polygon covering more tiles than this at --zoom is most likely the wrong zoom


class CorrectionFileError(TileclassError):
    """A corrections file that cannot be imported, naming the row or feature at fault."""


def read_corrections(path: Path, *, model: ModelInfo, zoom: int | None = None) -> list[tuple[Tile, str]]:
    """The ``(tile, label)`` pairs of a ``.csv`` or ``.geojson``/``.json`` file, labels in the model's spelling."""
    if not path.is_file():
        raise CorrectionFileError(f"corrections file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        if zoom is not None:
            raise CorrectionFileError("--zoom is for GeoJSON polygons: a CSV row names its tile's zoom")
        return read_csv(path, model=model)
    if suffix in (".geojson", ".json"):
        if zoom is None:
            raise CorrectionFileError("a GeoJSON file of polygons needs --zoom: the zoom whose tiles they label")
        return read_geojson(path, model=model, zoom=zoom)
    raise CorrectionFileError(f"corrections file {path.name!r} is neither .csv nor .geojson")


def read_csv(path: Path, *, model: ModelInfo) -> list[tuple[Tile, str]]:
    labels: dict[Tile, tuple[str, int]] = {}
    for row in tile_rows(path, COLUMNS, error=CorrectionFileError, what="z, x, y and label"):
        where = row.where
        tile = tile_at(row, error=CorrectionFileError)
        label = row.values[row.columns["label"]]
        if not label.strip():
            raise CorrectionFileError(f"{where}the label is empty")
        label = class_of(model, label, where=where)
        earlier = labels.get(tile)
        if earlier is not None and earlier[0] != label:
            raise CorrectionFileError(f"{where}tile {tile} is labelled {label} here but {earlier[0]} in row "
                                      f"{earlier[1]}")
        labels[tile] = (label, row.number)
    if not labels:
        raise CorrectionFileError(f"{path.name} has no corrections: after the header z,x,y,label come its rows")
    return [(tile, label) for tile, (label, _) in labels.items()]


def read_geojson(path: Path, *, model: ModelInfo, zoom: int) -> list[tuple[Tile, str]]:
    from shapely.errors import GEOSException
    from shapely.geometry import shape
    from shapely.ops import unary_union

    areas: dict[str, list[Any]] = defaultdict(list)  # label -> its features' polygons
    covered: dict[tuple[int, int, int], set[str]] = defaultdict(set)
    for number, feature in enumerate(_features(path), start=1):
        where = f"{path.name} feature {number}: "
        label = _label(feature, where, model)
        geometry = feature.get("geometry") or {}
        if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
            kind = geometry.get("type") if isinstance(geometry, dict) else None
            raise CorrectionFileError(f"{where}is a {kind or 'feature without geometry'}: a Polygon or "
                                      "MultiPolygon is needed")
        try:
            polygon = shape(geometry).buffer(0)
            region = Region(zooms=[zoom], area=GeoJsonArea(str(path), "", polygon))
        except (ValueError, TypeError, AttributeError, IndexError, KeyError, GEOSException, TileclassError) as exc:
            raise CorrectionFileError(f"{where}{exc}") from None
        areas[label].append(polygon)
        for chunk in cover(region):
            for tile in chunk.tiles:
                covered[tile.xyz()].add(label)
            if len(covered) > MAX_TILES:
                raise CorrectionFileError(f"{where}the polygons cover more than {MAX_TILES:,} tiles at zoom {zoom}: "
                                          "is --zoom right?")
    unions = {label: unary_union(polygons) for label, polygons in areas.items()}
    return [(Tile(*key), _winner(key, labels, unions)) for key, labels in sorted(covered.items())]


def _features(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise CorrectionFileError(f"cannot read GeoJSON {path.name}: {exc.__class__.__name__}: {exc}") from None
    kind = document.get("type") if isinstance(document, dict) else None
    features = document.get("features") if kind == "FeatureCollection" else [document] if kind == "Feature" else None
    if not isinstance(features, list) or not features or not all(isinstance(f, dict) for f in features):
        raise CorrectionFileError(f"{path.name} must be a FeatureCollection of polygon features with a 'label' "
                                  "property")
    return features


def _label(feature: dict[str, Any], where: str, model: ModelInfo) -> str:
    properties = feature.get("properties")
    label = properties.get("label") if isinstance(properties, dict) else None
    if not isinstance(label, str) or not label.strip():
        raise CorrectionFileError(f"{where}has no 'label' property (a class of the model)")
    return class_of(model, label, where=where)


def _winner(key: tuple[int, int, int], labels: set[str], unions: dict[str, Any]) -> str:
    """The label of a tile covered by features of one label, else the label covering most of it."""
    if len(labels) == 1:
        return next(iter(labels))
    from shapely.geometry import box

    z, x, y = key
    outline = box(*mercantile.bounds(x, y, z))
    return max(sorted(labels), key=lambda label: unions[label].intersection(outline).area)
