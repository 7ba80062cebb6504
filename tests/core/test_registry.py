"""The model registry (core/models/): registering a checkpoint (copies named for their call only, renamed into
place, and checked after the copy), one read shape for every way to a model, and one rule for names."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.db import session_scope
from core.errors import TileclassError
from core.models import names
from core.models.info import ModelInfo
from core.models.lookups import find_model, get_model, list_models, newest_model
from core.models.manage import name_model, remove_model
from core.models.registry import register_checkpoint, register_model
from core.results import record_results
from core.settings import Settings, get_settings
from core.sidecar import sidecar_path
from tests.conftest import REPO_ROOT
from tests.factories import grid, model_hash
from tests.worker.support import tiny_checkpoint


@pytest.fixture
def settings_env(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TILECLASS_MODEL_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    return tmp_path / "models"


def test_producers_registering_one_model_at_once_all_succeed_and_leave_no_partial_file(
        settings_env: Path, tmp_path: Path) -> None:
    checkpoint = tiny_checkpoint(tmp_path / "trained")
    start = threading.Barrier(6)
    errors: list[BaseException] = []
    hashes: list[str] = []

    def register() -> None:
        start.wait()
        try:
            with session_scope() as session:
                hashes.append(register_checkpoint(session, checkpoint=checkpoint, settings=get_settings()).hash)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not [e for e in errors if "database is locked" not in str(e)], errors  # SQLite may make some wait
    assert len(set(hashes)) == 1
    stored = sorted(path.name for path in settings_env.iterdir())
    assert stored == [f"{hashes[0]}.json", f"{hashes[0]}.pt"]
    assert (settings_env / f"{hashes[0]}.pt").read_bytes() == checkpoint.read_bytes()


def test_a_checkpoint_that_no_longer_matches_its_sidecar_is_not_stored(settings_env: Path, tmp_path: Path) -> None:
    checkpoint = tiny_checkpoint(tmp_path / "trained")
    checkpoint.write_bytes(checkpoint.read_bytes() + b"changed")
    with session_scope() as session, pytest.raises(Exception, match="does not match the hash in"):
        register_checkpoint(session, checkpoint=checkpoint, settings=get_settings())
    assert not settings_env.exists() or not any(settings_env.iterdir())
    assert sidecar_path(checkpoint).exists()


def test_every_way_to_a_model_gives_the_one_frozen_read_shape(settings_env: Path, tmp_path: Path) -> None:
    """Registering, finding (by name, hash or prefix), listing, naming and removing all answer ``ModelInfo``, with
    plain fields, never the table's row."""
    with session_scope() as session:
        stored = register_checkpoint(session, checkpoint=tiny_checkpoint(tmp_path / "trained"),
                                     settings=get_settings())
        spare = register_model(session, model_hash=model_hash("spare"), arch="resnet18",
                               class_names=["Forest", "River"], image_size=64, path="/m.pt",
                               metrics={"val_accuracy": 0.5, "uncertain_below": 0.6})
        record_results(session, model_hash=spare.hash, job_id=None, source_name="tiles", results=grid(3))
        named = name_model(session, ref=stored.hash[:8], name="lisbon-v2")
        answers = {"registered": stored, "spare": spare, "named": named,
                   "by name": find_model(session, ref="lisbon-v2"),
                   "counted": find_model(session, ref=spare.hash[:6], count_results=True),
                   "exact": get_model(session, model_hash=stored.hash), "newest": newest_model(session),
                   **{f"listed {i}": model for i, model in enumerate(list_models(session))}}
        removed = remove_model(session, ref="lisbon-v2")
    assert {what: type(answer) for what, answer in answers.items()} == dict.fromkeys(answers, ModelInfo) \
        and type(removed) is ModelInfo
    assert dataclasses.is_dataclass(ModelInfo) and ModelInfo.__dataclass_params__.frozen  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        named.name = "other"  # type: ignore[misc]
    assert (named.name, named.label, answers["by name"].hash, removed.hash) == (
        "lisbon-v2", "lisbon-v2", stored.hash, stored.hash)
    assert (answers["counted"].results, answers["counted"].val_accuracy, answers["counted"].uncertain_below) == (
        3, 0.5, 0.6)
    assert answers["counted"].class_names == ("Forest", "River") and answers["registered"].results is None
    assert json.loads(json.dumps(answers["counted"].as_dict(full=True)))["class_names"] == ["Forest", "River"]


def test_one_rule_names_models_sources_and_tile_roots() -> None:
    """The name rule is written once (core.models.names); settings take it from there."""
    import core.settings_groups

    assert core.settings_groups.NAME_PATTERN is names.NAME_PATTERN
    for bad in ("../up", "a/b", "-lead", "x" * 65, ""):
        with pytest.raises(TileclassError, match="must be letters, digits"):
            names.check_model_name(bad)
        with pytest.raises(ValueError, match="must be letters, digits"):
            Settings(sources={"named": {bad: "/data/a.mbtiles"}})
    with pytest.raises(TileclassError, match="hash prefix"):
        names.check_model_name("abcdef12")
    assert names.check_model_name("lisbon-v2.1_b") == "lisbon-v2.1_b"


def test_the_name_rule_loads_neither_the_database_nor_pydantic(tmp_path: Path) -> None:
    """core.models stays light: its package file imports nothing, its names only the standard library, so that
    core.settings can use them."""
    code = ("import json, sys\nimport core.models.names, core.models.info\n"
            "print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in "
            "('sqlalchemy', 'pydantic', 'pydantic_settings', 'celery', 'kombu') or n.startswith('core.'))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["core.errors", "core.models", "core.models.info", "core.models.names"]
