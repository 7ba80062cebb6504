"""Arbitrary input where tileclass meets the outside world: never a traceback, never a crashed worker.

Hypothesis feeds any JSON-shaped payload to the message parsers a worker runs on every delivery, and any text and
JSON to the region parsers the CLI runs on ``--bbox``, ``--zoom`` and ``--geojson``. Each must either give a valid
value or raise the one error its caller turns into a dropped message or a one-line message.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.bbox import BBox
from core.errors import TileError
from core.messages import ClassifyBatch, TrainRequest
from core.region import Region, load_geojson
from core.tiles import Tile, parse_zooms

MESSAGE_ERRORS = (KeyError, TypeError, ValueError)  # what worker.tasks catches to drop a malformed message
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
tile_rows = st.lists(st.one_of(scalars, st.integers(-5, 2**25)), min_size=0, max_size=5)
messages = st.fixed_dictionaries({}, optional={
    "format": st.one_of(st.just(1), st.just(2), scalars), "job_id": scalars, "seq": scalars,
    "model_hash": scalars, "source": scalars, "root": scalars,
    "tiles": st.one_of(json_values, st.lists(tile_rows, max_size=4)),
    "data_dir": scalars, "config": json_values,
})


@settings(max_examples=400, deadline=None)
@given(messages | json_values)
def test_any_message_payload_parses_or_is_refused_as_malformed(payload: Any) -> None:
    for parse in (ClassifyBatch.from_message, TrainRequest.from_message):
        try:
            parsed = parse(payload)
        except MESSAGE_ERRORS:
            continue
        if isinstance(parsed, ClassifyBatch):
            assert all(isinstance(tile, Tile) for tile in parsed.tiles)
            assert isinstance(parsed.job_id, int) and isinstance(parsed.seq, int)
            json.dumps(parsed.to_message())  # and it goes back to JSON, as a put-back batch must
        else:
            assert isinstance(parsed.job_id, int) and isinstance(parsed.config, dict)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.lists(st.text(max_size=8), max_size=3))
def test_any_bbox_and_zoom_text_parses_or_gives_a_tile_error(bbox: str, zooms: list[str]) -> None:
    try:
        box = BBox.parse(bbox)
        box.tiles(3)
    except TileError:
        pass
    with contextlib.suppress(TileError):
        parse_zooms(zooms)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(json_values)
def test_any_json_as_geojson_gives_a_region_or_a_tile_error(tmp_path: Path, document: Any) -> None:
    path = tmp_path / "area.geojson"
    polygon = {"type": "Polygon", "coordinates": document}
    for candidate in (document, polygon, {"type": "FeatureCollection", "features": document}):
        path.write_text(json.dumps(candidate))
        with contextlib.suppress(TileError):
            Region(area=load_geojson(path))
