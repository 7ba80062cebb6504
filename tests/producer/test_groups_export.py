"""``--groups NAME`` in ``tileclass export`` (issue 29, part 2): a ``group`` column in CSV and a ``group`` property
in GeoJSON, blank for empty tiles; a grouping of another model is a one-line error."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from core.class_groups import add_grouping
from core.db import session_scope
from core.jobs import create_job
from core.results import Empty, record_empty, record_results
from core.settings import get_settings
from core.tiles import Tile
from tests.factories import CLASSES, add_model, model_hash, scored
from tests.producer.conftest import cli

LABELS = ["Forest", "River", "Residential", "Forest", "River"]
GROUPS = {"green": ["Forest"], "wet": ["River"]}  # Residential is in no group: "other"


@pytest.fixture
def job(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    groups_file = tmp_path / "groups.json"
    groups_file.write_text(json.dumps(GROUPS))
    with session_scope() as session:
        digest = add_model(session, "grouped")
        add_model(session, "stranger")
        job_id = create_job(session, model_hash=digest).id
        record_results(session, model_hash=digest, job_id=job_id, source_name="tiles",
                       results=[scored(16, 100 + i, 200, label) for i, label in enumerate(LABELS)])
        record_empty(session, model_hash=digest, job_id=job_id, source_name="tiles",
                     empty=[Empty(Tile(16, 99, 200, "16/99/200.png"), "transparent")])
        add_grouping(session, name="wetness", model_ref=digest, path=groups_file)
    return job_id


def test_csv_export_has_each_rows_group_after_its_label(job: int, tmp_path: Path) -> None:
    out = tmp_path / "grouped.csv"
    result = cli("export", str(job), "--format", "csv", "--out", str(out), "--groups", "wetness", "--include-empty")
    assert result.exit_code == 0, result.output
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0])
    assert header[header.index("label") + 1] == "group"
    by_x = {int(row["x"]): (row["label"], row["group"]) for row in rows}
    expected = {"Forest": "green", "River": "wet", "Residential": "other"}
    assert by_x == {99: ("", ""), **{100 + i: (label, expected[label]) for i, label in enumerate(LABELS)}}
    assert set(CLASSES) == set(expected)


def test_geojson_export_has_a_group_property_and_plain_exports_have_none(job: int, tmp_path: Path) -> None:
    grouped, plain = tmp_path / "grouped.geojson", tmp_path / "plain.geojson"
    assert cli("export", str(job), "-f", "geojson", "-o", str(grouped), "--groups", "wetness").exit_code == 0
    assert cli("export", str(job), "-f", "geojson", "-o", str(plain)).exit_code == 0
    features = json.loads(grouped.read_text())["features"]
    assert sorted(f["properties"]["group"] for f in features) == ["green", "green", "other", "wet", "wet"]
    assert all("group" not in f["properties"] for f in json.loads(plain.read_text())["features"])


def test_a_grouping_of_another_model_or_none_at_all_is_one_line(job: int, tmp_path: Path) -> None:
    groups_file = tmp_path / "groups.json"
    with session_scope() as session:
        add_grouping(session, name="theirs", model_ref=model_hash("stranger"), path=groups_file)
    out = tmp_path / "x.csv"
    result = cli("export", str(job), "-f", "csv", "-o", str(out), "--groups", "theirs")
    assert result.exit_code == 2 and result.stderr.startswith("Error: grouping 'theirs' is for model ")
    missing = cli("export", str(job), "-f", "csv", "-o", str(out), "--groups", "nope")
    assert missing.exit_code == 2
    assert missing.stderr.strip() == "Error: no grouping 'nope' (registered: theirs, wetness)"
    assert not out.exists()
