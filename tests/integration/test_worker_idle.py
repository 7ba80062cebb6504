"""A real ``tileclass worker`` started with no configuration at all: it says which absolute broker folder and
database file it made where it runs, and warns that it waits for nothing (``worker.idle``)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.worker.support import running, start_launcher, wait_for, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_worker_without_settings_names_its_folders_and_warns_when_idle(tmp_path: Path) -> None:
    env = worker_env(worker_idle_warning=1)  # no TILECLASS_BROKER_URL, no TILECLASS_DATABASE_URL: the defaults
    log = tmp_path / "worker.log"
    launcher = start_launcher(["--device", "cpu", "--processes", "1"], env, cwd=tmp_path, log=log)
    with running(launcher):
        wait_for(lambda: "has had no task" in log.read_text(), timeout=120, what="the idle warning", logs=(log,),
                 processes=(launcher,))
        launcher.send_signal(signal.SIGINT)
        assert launcher.wait(timeout=60) == 0
    text = log.read_text()
    where = (f"reads the broker filesystem:// (folder {tmp_path / '.tileclass' / 'broker'}), results database "
             f"sqlite:///{tmp_path / 'tileclass.db'}")
    banner = next(line for line in text.splitlines() if "cpu0@" in line and " reads the broker " in line)
    assert banner.endswith(where) and "INFO" in banner
    warning = next(line for line in text.splitlines() if "has had no task in 1 s" in line)
    assert "WARNING" in warning and where.removeprefix("reads the ") in warning
    assert warning.endswith("give it the same TILECLASS_BROKER_URL and TILECLASS_DATABASE_URL.")
    assert text.count("has had no task") == 1  # once
