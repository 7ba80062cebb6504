"""Registering a checkpoint: copies named for their call only, renamed into place, and checked after the copy."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.db import session_scope
from core.registry import register_checkpoint
from core.settings import get_settings
from core.sidecar import sidecar_path
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
