"""``tileclass models``, ``models show|name|remove`` on a real SQLite file: listing with result counts, names used
wherever a model is taken, names that could be hash prefixes refused, removal refused while anything refers to it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.db import session_scope
from core.jobs import create_job
from core.models.registry import register_checkpoint
from core.results import record_results
from core.schema import Model
from core.settings import get_settings
from tests.factories import add_model, grid, model_hash
from tests.producer.conftest import cli
from tests.worker.support import tiny_checkpoint

pytestmark = pytest.mark.integration


@pytest.fixture
def database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TILECLASS_MODEL_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    now = datetime.now(UTC)
    with session_scope() as session:
        old = add_model(session, "old", created_at=now - timedelta(days=2))
        add_model(session, "spare", created_at=now - timedelta(days=1))
        session.get(Model, old).metrics = {"val_accuracy": 0.875}
        record_results(session, model_hash=old, job_id=None, source_name="tiles", results=grid(5))
    return sqlite_url


def listing() -> list[dict]:
    result = cli("models", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_models_are_listed_newest_first_with_their_results_and_shown_in_full(database: str, tmp_path: Path) -> None:
    with session_scope() as session:
        fresh = register_checkpoint(session, checkpoint=tiny_checkpoint(tmp_path / "trained"),
                                    settings=get_settings()).hash
    rows = listing()
    assert [row["hash"] for row in rows] == [fresh, model_hash("spare"), model_hash("old")]
    assert {row["hash"]: (row["results"], row["val_accuracy"]) for row in rows}[model_hash("old")] == (5, 0.875)
    assert rows[0] | {"registered_at": None, "val_accuracy": None} == {
        "hash": fresh, "name": None, "arch": "resnet18", "classes": 3, "image_size": 32, "val_accuracy": None,
        "registered_at": None, "results": 0}
    table = cli("models").stdout.splitlines()
    assert table[0].split()[:3] == ["model", "name", "arch"] and table[3].split()[5] == "87.5%"
    shown = json.loads(cli("models", "show", fresh[:8], "--json").stdout)
    assert shown["class_names"] == ["Forest", "River", "Residential"]
    assert shown["metrics_path"] == str(tmp_path / "models" / f"{fresh}.json")
    assert Path(shown["metrics_path"]).is_file()


def test_a_name_works_wherever_a_model_is_taken_and_names_like_hashes_are_refused(database: str) -> None:
    old = model_hash("old")
    named = cli("models", "name", old[:10], "lisbon-v2")
    assert named.exit_code == 0 and named.stdout.strip() == f"model {old[:12]} is now 'lisbon-v2'"
    assert [row["name"] for row in listing() if row["hash"] == old] == ["lisbon-v2"]
    answer = cli("query", "tile", "17/1000/2000", "--model", "lisbon-v2", "--json")
    assert answer.exit_code == 0 and json.loads(answer.stdout)["model"] == old
    assert json.loads(cli("models", "show", "lisbon-v2", "--json").stdout)["hash"] == old
    for name, problem in [("deadbeef", "could be read as a hash prefix (six or more hex digits)"),
                          ("../x", "must be letters, digits, '.', '_' or '-'"),
                          ("lisbon-v2", f"is already model {old[:12]}'s")]:
        result = cli("models", "name", model_hash("spare"), name)
        assert result.exit_code == 2 and problem in result.output and len(result.output.strip().splitlines()) == 1
    missing = cli("query", "tile", "17/1000/2000", "--model", "porto-v1")
    assert missing.exit_code == 2 and "(registered: " in missing.output and "lisbon-v2" in missing.output


def test_a_model_is_removed_only_when_nothing_refers_to_it(database: str) -> None:
    with session_scope() as session:
        create_job(session, model_hash=model_hash("old"))
    refused = cli("models", "remove", model_hash("old"))
    assert refused.exit_code == 2
    assert f"model {model_hash('old')[:12]} is still referred to by 1 job, 5 results: it stays registered" \
        in refused.output
    removed = cli("models", "remove", model_hash("spare"), "--json")
    assert removed.exit_code == 0 and json.loads(removed.stdout) == {"hash": model_hash("spare"), "removed": True}
    assert [row["hash"] for row in listing()] == [model_hash("old")]
    gone = cli("models", "show", model_hash("spare"))
    assert gone.exit_code == 2 and "is not a model name or a registered model hash" in gone.output
