"""Streaming writers for query results: GeoJSON, CSV and a JSON array.

Each format is a generator of text pieces (``geojson_chunks``, ``csv_chunks``, ``json_chunks``) that the CLI writes
to a file and the HTTP API streams as the response body. Each consumes an iterable of ``core.queries.TileAnswer``
(and, with ``--include-empty``, ``EmptyAnswer``: a tile with nothing to classify, whose label and confidence are
null) one row at a time and gives text as it goes, so an export of millions of rows holds one row (a CSV piece:
a few hundred) in memory, not the whole result.

GeoJSON (RFC 7946): a ``FeatureCollection`` whose features are the tiles' polygons in WGS84 longitude/latitude,
exterior rings counter-clockwise, coordinates rounded to 1e-7 degrees (about 1 cm), with the properties ``z``,
``x``, ``y``, ``label``, ``confidence``, ``uncertain``, ``coverage``, ``model``, ``job`` and ``path`` (an empty
tile also ``"empty": true`` and its ``reason``). A tile without coordinates becomes a feature with a ``null``
geometry.

CSV: one header line, then one row per tile:
``z,x,y,root,path,label,confidence,uncertain,coverage,model,job,classified_at`` and one ``p_<class>`` column per
class of the model (its probability for that tile). With empty tiles, an ``empty`` column (``true`` or ``false``)
follows ``job``; an empty tile's label, confidence, uncertain, coverage and probabilities are blank and its
``classified_at`` is when it was found empty.

With a class grouping (``--groups NAME``, ``core.class_groups``), each row also has its label's ``group``: a
property of each feature, a CSV column after ``label`` (null, blank in CSV, for an empty tile).

``uncertain`` (``true``/``false``) says whether the answer is less confident than its job's ``uncertain_below``;
``coverage`` is the share of the tile's pixels that held data, null (blank in CSV) for a result from before it was
measured.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TextIO

from core.queries.types import Answer, EmptyAnswer, TileFailure
from core.tiles import Tile

CSV_COLUMNS = ("z", "x", "y", "root", "path", "label", "confidence", "uncertain", "coverage", "model", "job",
               "classified_at")
FAILURE_CSV_COLUMNS = ("z", "x", "y", "root", "path", "reason", "attempts", "failed_at")
PRECISION = 7
GroupOf = Callable[[str], str]  # a label's group: ``core.class_groups.ClassGrouping.group_of``


def tile_polygon(tile: Tile) -> dict[str, Any]:
    """The tile's outline as a GeoJSON Polygon with a counter-clockwise ring (RFC 7946's right-hand rule)."""
    west, south, east, north = (round(v, PRECISION) for v in tile.bounds())
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def feature(answer: Answer, *, group_of: GroupOf | None = None) -> dict[str, Any]:
    """One result (or empty tile) as a GeoJSON Feature (``group_of``: with its label's group)."""
    tile = answer.tile
    properties: dict[str, Any] = {"z": tile.z, "x": tile.x, "y": tile.y}
    if isinstance(answer, EmptyAnswer):
        properties |= {"label": None, "confidence": None, "empty": True, "reason": answer.reason}
    else:
        properties |= {"label": answer.label, "confidence": answer.confidence, "uncertain": answer.uncertain,
                       "coverage": answer.coverage}
    if group_of is not None:
        properties["group"] = None if isinstance(answer, EmptyAnswer) else group_of(answer.label)
    properties |= {"model": answer.model_hash, "job": answer.job_id, "path": tile.path}
    return {"type": "Feature", "geometry": tile_polygon(tile) if tile.has_coordinates else None,
            "properties": properties}


def geojson_chunks(rows: Iterable[Answer], *, group_of: GroupOf | None = None) -> Iterator[str]:
    """A FeatureCollection, one feature per line, as pieces of text to write or stream as they come."""
    yield '{"type": "FeatureCollection", "features": [\n'
    separator = ""
    for answer in rows:
        yield separator + json.dumps(feature(answer, group_of=group_of), separators=(",", ":"))
        separator = ",\n"
    yield "\n]}\n"


def csv_chunks(rows: Iterable[Answer], *, class_names: Sequence[str], with_empty: bool = False,
               rows_per_chunk: int = 256, group_of: GroupOf | None = None) -> Iterator[str]:
    """A header and one line per result (``with_empty``: and per empty tile), ``rows_per_chunk`` lines a piece;
    ``group_of``: with a ``group`` column after ``label``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    after_job = CSV_COLUMNS.index("job") + 1
    columns = [*CSV_COLUMNS[:after_job], "empty", *CSV_COLUMNS[after_job:]] if with_empty else list(CSV_COLUMNS)
    after_label = columns.index("label") + 1
    if group_of is not None:
        columns.insert(after_label, "group")
    writer.writerow([*columns, *(f"p_{name}" for name in class_names)])
    for count, answer in enumerate(rows, start=1):
        row = _csv_row(answer, class_names=class_names, with_empty=with_empty)
        if group_of is not None:
            row.insert(after_label, "" if isinstance(answer, EmptyAnswer) else group_of(answer.label))
        writer.writerow(row)
        if count % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _csv_row(answer: Answer, *, class_names: Sequence[str], with_empty: bool) -> list[Any]:
    tile, job = answer.tile, "" if answer.job_id is None else answer.job_id
    flag = [str(isinstance(answer, EmptyAnswer)).lower()] if with_empty else []
    if isinstance(answer, EmptyAnswer):
        return [tile.z, tile.x, tile.y, answer.source_name, tile.path, "", "", "", "", answer.model_hash, job, *flag,
                answer.found_at.isoformat(), *("" for _ in class_names)]
    coverage = "" if answer.coverage is None else answer.coverage
    return [tile.z, tile.x, tile.y, answer.source_name, tile.path, answer.label, answer.confidence,
            str(answer.uncertain).lower(), coverage, answer.model_hash, job, *flag, answer.classified_at.isoformat(),
            *(answer.probabilities.get(name, "") for name in class_names)]


def json_chunks(rows: Iterable[Answer], *, top_k: int = 0) -> Iterator[str]:
    """A JSON array of result objects, one per line."""
    return json_array_chunks(answer.as_dict(top_k=top_k) for answer in rows)


def json_array_chunks(documents: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A JSON array of any documents, one per line."""
    yield "["
    separator = "\n"
    for document in documents:
        yield separator + json.dumps(document)
        separator = ",\n"
    yield "\n]\n" if separator != "\n" else "]\n"


def failure_csv_chunks(failures: Iterable[TileFailure]) -> Iterator[str]:
    """Failed tiles as CSV (``FAILURE_CSV_COLUMNS``), a line a piece."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FAILURE_CSV_COLUMNS)
    for failure in failures:
        document = failure.as_dict()
        writer.writerow(["" if document[key] is None else document[key] for key in FAILURE_CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def write_geojson(rows: Iterable[Answer], out: TextIO, *, group_of: GroupOf | None = None) -> int:
    """Write a FeatureCollection; returns the number of features."""
    return _write(geojson_chunks(_counted(rows, counter := [0]), group_of=group_of), out, counter)


def write_csv(rows: Iterable[Answer], out: TextIO, *, class_names: Sequence[str], with_empty: bool = False,
              group_of: GroupOf | None = None) -> int:
    """Write a header and one line per row; returns the number of rows."""
    chunks = csv_chunks(_counted(rows, counter := [0]), class_names=class_names, with_empty=with_empty,
                        rows_per_chunk=1, group_of=group_of)
    return _write(chunks, out, counter)


def write_json(rows: Iterable[Answer], out: TextIO, *, top_k: int = 0) -> int:
    """Write a JSON array of result objects; returns the number of objects."""
    return _write(json_chunks(_counted(rows, counter := [0]), top_k=top_k), out, counter)


def _counted(rows: Iterable[Answer], counter: list[int]) -> Iterator[Answer]:
    for answer in rows:
        counter[0] += 1
        yield answer


def _write(chunks: Iterable[str], out: TextIO, counter: list[int]) -> int:
    for chunk in chunks:
        out.write(chunk)
    return counter[0]
