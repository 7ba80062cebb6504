"""Streaming writers for query results: GeoJSON, CSV and a JSON array.

Each writer consumes an iterable of ``core.queries.TileAnswer`` (and, with ``--include-empty``, ``EmptyAnswer``:
a tile with nothing to classify, whose label and confidence are null) one row at a time and writes as it goes, so an
export of millions of rows holds one row in memory, not the whole result.

GeoJSON (RFC 7946): a ``FeatureCollection`` whose features are the tiles' polygons in WGS84 longitude/latitude,
exterior rings counter-clockwise, coordinates rounded to 1e-7 degrees (about 1 cm), with the properties ``z``,
``x``, ``y``, ``label``, ``confidence``, ``model``, ``job`` and ``path`` (an empty tile also ``"empty": true`` and
its ``reason``). A tile without coordinates becomes a feature with a ``null`` geometry.

CSV: one header line, then one row per tile: ``z,x,y,root,path,label,confidence,model,job,classified_at`` and one
``p_<class>`` column per class of the model (its probability for that tile). With empty tiles, an ``empty`` column
(``true`` or ``false``) follows ``job``; an empty tile's label, confidence and probabilities are blank and its
``classified_at`` is when it was found empty.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from core.queries.types import Answer, EmptyAnswer
from core.tiles import Tile

CSV_COLUMNS = ("z", "x", "y", "root", "path", "label", "confidence", "model", "job", "classified_at")
PRECISION = 7


def tile_polygon(tile: Tile) -> dict[str, Any]:
    """The tile's outline as a GeoJSON Polygon with a counter-clockwise ring (RFC 7946's right-hand rule)."""
    west, south, east, north = (round(v, PRECISION) for v in tile.bounds())
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def feature(answer: Answer) -> dict[str, Any]:
    """One result (or empty tile) as a GeoJSON Feature."""
    tile = answer.tile
    properties: dict[str, Any] = {"z": tile.z, "x": tile.x, "y": tile.y}
    if isinstance(answer, EmptyAnswer):
        properties |= {"label": None, "confidence": None, "empty": True, "reason": answer.reason}
    else:
        properties |= {"label": answer.label, "confidence": answer.confidence}
    properties |= {"model": answer.model_hash, "job": answer.job_id, "path": tile.path}
    return {"type": "Feature", "geometry": tile_polygon(tile) if tile.has_coordinates else None,
            "properties": properties}


def write_geojson(rows: Iterable[Answer], out: TextIO) -> int:
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


def write_csv(rows: Iterable[Answer], out: TextIO, *, class_names: Sequence[str], with_empty: bool = False) -> int:
    """Write a header and one line per result (``with_empty``: and per empty tile); returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    columns = [*CSV_COLUMNS[:9], "empty", *CSV_COLUMNS[9:]] if with_empty else list(CSV_COLUMNS)
    writer.writerow([*columns, *(f"p_{name}" for name in class_names)])
    count = 0
    for answer in rows:
        tile, job = answer.tile, "" if answer.job_id is None else answer.job_id
        empty = isinstance(answer, EmptyAnswer)
        flag = ["true" if empty else "false"] if with_empty else []
        if isinstance(answer, EmptyAnswer):
            writer.writerow([tile.z, tile.x, tile.y, answer.root_name, tile.path, "", "", answer.model_hash, job,
                             *flag, answer.found_at.isoformat(), *("" for _ in class_names)])
        else:
            writer.writerow([
                tile.z, tile.x, tile.y, answer.root_name, tile.path, answer.label, answer.confidence,
                answer.model_hash, job, *flag, answer.classified_at.isoformat(),
                *(answer.probabilities.get(name, "") for name in class_names),
            ])
        count += 1
    return count


def write_json(rows: Iterable[Answer], out: TextIO, *, top_k: int = 0) -> int:
    """Write a JSON array of result objects, one per line; returns the number of objects."""
    out.write("[")
    count = 0
    for answer in rows:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(answer.as_dict(top_k=top_k)))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count
