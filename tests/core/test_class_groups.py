"""Class groups (issue 29, part 2): reading a groups file against a model's classes, storing groupings on SQLite and
PostgreSQL, the one lookup (``load_grouping``), and migration 0010 on a database that holds data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from core.class_groups import (
    OTHER,
    GroupingError,
    add_grouping,
    list_groupings,
    load_grouping,
    parse_groups,
    remove_grouping,
)
from core.db import session_scope
from core.errors import NotFoundError
from core.migrate import alembic_config, upgrade
from core.results import record_results
from core.schema import TileResult
from tests.factories import add_model, scored

DEMO = ["field", "residential", "road", "trees", "water"]
LANDING = {"safe to land": ["field"], "avoid": ["residential", "road", "water", "trees"]}


def _write(tmp_path: Path, data: Any, name: str = "groups.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_every_class_lands_in_its_group_and_the_rest_in_other_last() -> None:
    pairs = parse_groups({"safe to land": ["field"], "avoid": ["road", "water"]}, DEMO)
    assert pairs == (("safe to land", ("field",)), ("avoid", ("road", "water")), (OTHER, ("residential", "trees")))
    # Every class is in exactly one group.
    assert sorted(label for _, labels in pairs for label in labels) == sorted(DEMO)


def test_a_grouping_that_names_every_class_has_no_other_and_a_users_other_is_merged_and_last() -> None:
    assert [g for g, _ in parse_groups(LANDING, DEMO)] == ["safe to land", "avoid"]
    pairs = parse_groups({"other": ["road"], "wet": ["water"]}, DEMO)
    assert pairs == (("wet", ("water",)), (OTHER, ("road", "field", "residential", "trees")))


@pytest.mark.parametrize(("data", "words"), [
    ({"safe": ["field", "lava", "snow"]}, "unknown classes 'lava', 'snow': the model's classes are field, "
                                          "residential, road, trees, water"),
    ({"a": ["field"], "b": ["road", "field"]}, "class 'field' is in groups 'a' and 'b'"),
    ({"a": ["field", "field"]}, "class 'field' is twice"),
    ({"a": "field"}, "group 'a' must be a list of class names"),
    (["field"], "a groups file is a JSON object of group name to classes"),
    ({}, "a groups file is a JSON object"),
    ({" ": ["field"]}, "group name '' must have 1 to 128 characters"),
])
def test_a_bad_groups_document_is_one_line_naming_the_problem(data: Any, words: str) -> None:
    with pytest.raises(GroupingError) as caught:
        parse_groups(data, DEMO)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_groupings_are_stored_loaded_listed_and_removed(database_url: str, tmp_path: Path) -> None:
    with session_scope(database_url) as session:
        model = add_model(session, "demo", classes=DEMO)
        other = add_model(session, "other", classes=DEMO)
        added = add_grouping(session, name="landing", model_ref=model[:8], path=_write(tmp_path, LANDING))
    assert added.model_sha256 == model
    with session_scope(database_url, read_only=True) as session:
        grouping = load_grouping(session, "landing", model_hash=model)
        assert grouping.groups == ["safe to land", "avoid"]
        assert [grouping.group_of(label) for label in DEMO] == ["safe to land", "avoid", "avoid", "avoid", "avoid"]
        assert grouping.created_at is not None and grouping.created_at.tzinfo is not None
        with pytest.raises(GroupingError, match=f"grouping 'landing' is for model {model[:12]}, not {other[:12]}"):
            load_grouping(session, "landing", model_hash=other)
        assert [g.name for g in list_groupings(session)] == ["landing"]
    with session_scope(database_url) as session, pytest.raises(GroupingError, match="exists already"):
        add_grouping(session, name="landing", model_ref=model, path=_write(tmp_path, LANDING))
    with session_scope(database_url) as session:
        assert remove_grouping(session, name="landing").name == "landing"
    with session_scope(database_url) as session, pytest.raises(NotFoundError, match="no grouping 'landing' "
                                                                                    r"\(registered: none"):
        load_grouping(session, "landing")


def test_a_grouping_is_checked_against_its_models_classes_and_named_plainly(sqlite_url: str,
                                                                            tmp_path: Path) -> None:
    with session_scope(sqlite_url) as session:
        model = add_model(session, "demo", classes=DEMO)
        with pytest.raises(GroupingError, match="unknown class 'Forest'"):
            add_grouping(session, name="g", model_ref=model, path=_write(tmp_path, {"green": ["Forest"]}))
        with pytest.raises(GroupingError, match="grouping name 'a b' must be letters"):
            add_grouping(session, name="a b", model_ref=model, path=_write(tmp_path, LANDING))
        with pytest.raises(GroupingError, match="is not JSON"):
            add_grouping(session, name="g", model_ref=model, path=_write(tmp_path, "{not json"))
        with pytest.raises(GroupingError, match="cannot read groups file"):
            add_grouping(session, name="g", model_ref=model, path=tmp_path / "missing.json")


def test_the_sql_expression_groups_like_group_of(database_url: str, tmp_path: Path) -> None:
    labels = ["field", "road", "trees", "water", "field", "residential"]
    with session_scope(database_url) as session:
        model = add_model(session, "demo", classes=DEMO)
        record_results(session, model_hash=model, job_id=None, source_name="demo",
                       results=[scored(17, i, 0, label, classes=DEMO) for i, label in enumerate(labels)])
        add_grouping(session, name="wet", model_ref=model, path=_write(tmp_path, {"wet": ["water"],
                                                                                  "dry": ["field"]}))
    with session_scope(database_url, read_only=True) as session:
        grouping = load_grouping(session, "wet")
        group = grouping.expression(TileResult.label)
        rows = dict(session.execute(select(group, func.count()).group_by(group)).all())
        by_class = session.execute(select(TileResult.label, func.count()).group_by(TileResult.label)).all()
    assert rows == {"wet": 1, "dry": 2, OTHER: 3}
    summed: dict[str, int] = {}
    for label, n in by_class:
        summed[grouping.group_of(str(label))] = summed.get(grouping.group_of(str(label)), 0) + int(n)
    assert summed == rows


def test_0010_adds_groupings_beside_existing_data_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _migrate_with_data(url)
    with pytest.raises(OperationalError, match="class_groupings"):  # the downgrade dropped it
        _count(url, "class_groupings")


def test_0010_on_postgresql_keeps_data_and_downgrades() -> None:
    from tests.conftest import fresh_postgres_database

    with fresh_postgres_database("tileclass_groups", migrate=False) as url:
        _migrate_with_data(url)


def _migrate_with_data(url: str) -> None:
    """0009 with a model and a result, upgraded to 0010 (a grouping stored), then downgraded: data stays."""
    upgrade(url, "0009")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO models (hash, arch, class_names, image_size, path, metrics, created_at) "
                          "VALUES (:m, 'resnet18', :c, 64, '/m.pt', '{}', '2026-12-01 10:00:00')"),
                     {"m": "a" * 64, "c": json.dumps(DEMO)})
        conn.execute(text("INSERT INTO tile_results (model_hash, z, x, y, root_name, path, label, confidence, "
                          "probabilities, classified_at) VALUES (:m, 17, 1, 2, 'demo', '17/1/2.png', 'field', 0.9, "
                          "'{}', '2026-12-01 10:00:00')"), {"m": "a" * 64})
    engine.dispose()
    upgrade(url)
    with session_scope(url) as session:
        # Every test runs in its own tmp_path (tests/conftest.py), so the working folder is the test's.
        add_grouping(session, name="landing", model_ref="a" * 64, path=_write(Path.cwd(), LANDING))
    with session_scope(url, read_only=True) as session:
        assert load_grouping(session, "landing").group_of("field") == "safe to land"
    assert _count(url, "tile_results") == 1 and _count(url, "class_groupings") == 1
    command.downgrade(alembic_config(url), "0009")
    assert _count(url, "tile_results") == 1 and _count(url, "models") == 1


def _count(url: str, table: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def test_a_groups_area_is_unknown_when_a_counted_class_has_none() -> None:
    from core.class_groups import ClassGrouping
    from core.queries.group_summaries import summarize_groups
    from core.queries.types import ClassCount

    grouping = ClassGrouping("g", "a" * 64, (("wet", ("River",)), (OTHER, ("Forest", "Residential"))))
    classes = [ClassCount("Forest", 2, 0.5, 0, 3.0), ClassCount("River", 2, 0.5, 1, None),
               ClassCount("Residential", 0, 0.0, 0, None)]  # uncounted: its missing area changes nothing
    rows = {row.group: (row.count, row.uncertain, row.area_km2) for row in summarize_groups(classes, grouping)}
    assert rows == {"wet": (2, 1, None), OTHER: (2, 0, 3.0)}
