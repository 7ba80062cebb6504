"""Streaming writers for query results: GeoJSON, CSV and a JSON array.

Each writer consumes an iterable of ``core.queries.TileAnswer`` one row at a time and writes as it goes, so an
export of millions of rows holds one row in memory, not the whole result.

GeoJSON (RFC 7946): a ``FeatureCollection`` whose features are the tiles' polygons in WGS84 longitude/latitude,
exterior rings counter-clockwise, coordinates rounded to 1e-7 degrees (about 1 cm), with the properties ``z``,
``x``, ``y``, ``label``, ``confidence``, ``model``, ``job`` and ``path``. A tile without coordinates becomes a
feature with a ``null`` geometry.

CSV: one header line, then one row per tile: ``z,x,y,root,path,label,confidence,model,job,classified_at`` and one
``p_<class>`` column per class of the model (its probability for that tile).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from core.queries.types import TileAnswer
from core.tiles import Tile

CSV_COLUMNS = ("z", "x", "y", "root", "path", "label", "confidence", "model", "job", "classified_at")
PRECISION = 7


def tile_polygon(tile: Tile) -> dict[str, Any]:
    """The tile's outline as a GeoJSON Polygon with a counter-clockwise ring (RFC 7946's right-hand rule)."""
    west, south, east, north = (round(v, PRECISION) for v in tile.bounds())
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def feature(answer: TileAnswer) -> dict[str, Any]:
    """One result as a GeoJSON Feature."""
    tile = answer.tile
    return {
        "type": "Feature",
        "geometry": tile_polygon(tile) if tile.has_coordinates else None,
        "properties": {"z": tile.z, "x": tile.x, "y": tile.y, "label": answer.label, "confidence": answer.confidence,
                       "model": answer.model_hash, "job": answer.job_id, "path": tile.path},
    }


def write_geojson(rows: Iterable[TileAnswer], out: TextIO) -> int:
    """Write a FeatureCollection, one feature per line; returns the number of features."""
    out.write('{"type": "FeatureCollection", "features": [\n')
    count = 0
    for answer in rows:
        if count:
            out.write(",\n")
        out.write(json.dumps(feature(answer), separators=(",", ":")))
        count += 1
    out.write("\n]}\n")
    return count


def write_csv(rows: Iterable[TileAnswer], out: TextIO, *, class_names: Sequence[str]) -> int:
    """Write a header and one line per result; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"p_{name}" for name in class_names)])
    count = 0
    for answer in rows:
        tile = answer.tile
        writer.writerow([
            tile.z, tile.x, tile.y, answer.root_name, tile.path, answer.label, answer.confidence, answer.model_hash,
            "" if answer.job_id is None else answer.job_id, answer.classified_at.isoformat(),
            *(answer.probabilities.get(name, "") for name in class_names),
        ])
        count += 1
    return count


def write_json(rows: Iterable[TileAnswer], out: TextIO, *, top_k: int = 0) -> int:
    """Write a JSON array of result objects, one per line; returns the number of objects."""
    out.write("[")
    count = 0
    for answer in rows:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(answer.as_dict(top_k=top_k)))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count
