"""``tileclass groups add|list|remove`` on a real SQLite file: a grouping of the demo's classes registered, listed
and removed; unknown classes, a class in two groups and an unknown grouping are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.db import session_scope
from core.settings import get_settings
from tests.factories import add_model
from tests.producer.conftest import cli

DEMO = ["field", "residential", "road", "trees", "water"]
LANDING = {"safe to land": ["field"], "avoid": ["residential", "road", "water", "trees"]}


@pytest.fixture
def model(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    with session_scope() as session:
        return add_model(session, "demo", classes=DEMO)


def _file(tmp_path: Path, data: object) -> str:
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_a_grouping_is_added_listed_and_removed(model: str, tmp_path: Path) -> None:
    added = cli("groups", "add", "landing", _file(tmp_path, LANDING), "--model", model[:8])
    assert added.exit_code == 0, added.output
    assert "safe to land: field" in added.stdout and "avoid: residential, road, water, trees" in added.stdout
    partial = cli("groups", "add", "wet", _file(tmp_path, {"wet": ["water"]}), "--model", model, "--json")
    assert json.loads(partial.stdout)["groups"] == {"wet": ["water"],
                                                    "other": ["field", "residential", "road", "trees"]}
    listed = cli("groups", "list", "--json")
    assert [(row["name"], row["model"]) for row in json.loads(listed.stdout)] == [("landing", model), ("wet", model)]
    assert "landing" in cli("groups", "list").stdout
    removed = cli("groups", "remove", "wet")
    assert removed.exit_code == 0 and "grouping 'wet' removed" in removed.stdout
    assert [row["name"] for row in json.loads(cli("groups", "list", "--json").stdout)] == ["landing"]


@pytest.mark.parametrize(("args", "message"), [
    (["add", "g", "{file}", "--model", "{model}"], "Error: unknown class 'lava': the model's classes are field, "
                                                   "residential, road, trees, water"),
    (["add", "g", "{twice}", "--model", "{model}"], "Error: class 'field' is in groups 'a' and 'b'"),
    (["add", "g", "{file}", "--model", "nosuchmodel"], "Error: model 'nosuchmodel' is not a checkpoint file"),
    (["remove", "nothing"], "Error: no grouping 'nothing' (registered: none"),
])
def test_user_errors_are_one_line_without_traceback(model: str, tmp_path: Path, args: list[str],
                                                    message: str) -> None:
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps({"a": ["field"], "b": ["field"]}))
    values = {"file": _file(tmp_path, {"hot": ["lava"]}), "twice": str(twice), "model": model}
    result = cli("groups", *[arg.format(**values) for arg in args])
    assert result.exit_code == 2
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_a_checkpoint_file_is_registered_on_the_way(model: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.worker.support import CLASSES, tiny_checkpoint

    monkeypatch.setenv("TILECLASS_MODEL_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    checkpoint = tiny_checkpoint(tmp_path / "trained")
    added = cli("groups", "add", "first", _file(tmp_path, {"first": [CLASSES[0]]}), "--model", str(checkpoint),
                "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["groups"] == {"first": [CLASSES[0]], "other": list(CLASSES[1:])}
    models = json.loads(cli("models", "--json").stdout)
    assert json.loads(added.stdout)["model"] in [row["hash"] for row in models] and len(models) == 2
