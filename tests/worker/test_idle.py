"""A worker says where it reads its work from, and warns when it waits for nothing (``worker.idle``): the watch on
its own here, a real worker process in tests/integration/test_worker_idle.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.db import session_scope
from core.jobs import create_job
from core.settings import Settings
from worker.idle import IdleWatch, holds_a_job, where_it_reads


def watched(settings: Settings, caplog: pytest.LogCaptureFixture, *, received: bool = False) -> list[str]:
    watch = IdleWatch("cpu0@host", settings)
    if received:
        watch.task_received(sender=None, request=None)
    with caplog.at_level(logging.WARNING, logger="worker.idle"):
        watch.run()
    return [record.getMessage() for record in caplog.records]


def test_a_fresh_database_without_a_task_is_warned_about_naming_absolute_paths(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fresh = tmp_path / "fresh.db"  # what a worker started with no settings makes: a file without the tables
    settings = Settings(database_url=f"sqlite:///{fresh}", data_dir=tmp_path / "state", worker={"idle_warning": 0.01})
    assert not holds_a_job(settings)
    [warning] = watched(settings, caplog)
    assert warning == (
        f"cpu0@host has had no task in 0.01 s and its results database holds no job: it may not share the producer's "
        f"broker and database. It reads the broker filesystem:// (folder {tmp_path / 'state' / 'broker'}), results "
        f"database sqlite:///{fresh}; start it in the folder where you ran 'tileclass enqueue', or give it the same "
        "TILECLASS_BROKER_URL and TILECLASS_DATABASE_URL.")


def test_no_warning_once_a_task_came_or_when_the_database_holds_a_job(
        sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(database_url=sqlite_url, worker={"idle_warning": 0.01})
    assert watched(settings, caplog, received=True) == []
    assert watched(settings, caplog) != []  # migrated, still no job
    caplog.clear()
    with session_scope(sqlite_url) as session:
        create_job(session)
    assert holds_a_job(settings) and watched(settings, caplog) == []


def test_relative_settings_are_shown_absolute_and_passwords_never(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("TILECLASS_DATABASE_URL", "TILECLASS_BROKER_URL", "TILECLASS_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert where_it_reads(Settings()) == (f"broker filesystem:// (folder {tmp_path / '.tileclass' / 'broker'}), "
                                          f"results database sqlite:///{tmp_path / 'tileclass.db'}")
    remote = Settings(broker_url="redis://:s3cret@127.0.0.1:6379/0",
                      database_url="postgresql+psycopg://tileclass:s3cret@127.0.0.1/results")
    assert where_it_reads(remote) == ("broker redis://:**@127.0.0.1:6379/0, results database "
                                      "postgresql+psycopg://tileclass:***@127.0.0.1/results")
