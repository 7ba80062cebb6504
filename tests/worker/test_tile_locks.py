"""The per-tile write locks on PostgreSQL: a writer frozen while holding them does not block its batch's rerun."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core import results
from core.db import session_scope
from core.results import lock_tiles
from core.tiles import Tile
from worker.runtime import is_transient_db_error

TILES = [Tile(17, 70420 + dx, 42997, f"17/{70420 + dx}/42997.png") for dx in range(4)]


def writers_waiting(url: str) -> int:
    """Sessions waiting for a tile lock, seen from a new transaction (pg_stat_activity is a snapshot per one)."""
    with session_scope(url) as session:
        return int(session.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                        "AND wait_event = 'advisory'")).scalar_one())


def test_a_frozen_lock_holder_is_ended_so_the_rerun_of_its_batch_goes_through(postgres_url: str,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results, "LOCK_HOLDER_IDLE_TIMEOUT_S", 1)
    rerun_done = threading.Event()

    def rerun() -> None:  # the redelivered batch, on another worker: it needs the same tiles' locks
        with session_scope(postgres_url) as session:
            lock_tiles(session, model_hash="m", source_name="city", tiles=reversed(TILES))
        rerun_done.set()

    with pytest.raises(DBAPIError) as ended, session_scope(postgres_url) as frozen:
        lock_tiles(frozen, model_hash="m", source_name="city", tiles=TILES)
        thread = threading.Thread(target=rerun, daemon=True)
        thread.start()
        # The frozen writer goes idle holding the locks; without the server's timeout this waits for ever.
        assert rerun_done.wait(timeout=120), "the rerun stayed blocked behind the frozen writer's locks"
        frozen.execute(text("SELECT 1"))  # the frozen writer wakes up: its session was ended
    # ... with an error its batch's retry treats as temporary, so it writes its rows again in a new transaction.
    assert is_transient_db_error(ended.value)
    with session_scope(postgres_url) as retry:
        lock_tiles(retry, model_hash="m", source_name="city", tiles=TILES)
    thread.join(timeout=10)


def test_locks_are_kept_by_a_busy_holder_until_it_commits(postgres_url: str) -> None:
    """Mutual exclusion itself: while one writer holds the tiles, a second writer of one of them waits."""
    second_done = threading.Event()

    def second() -> None:
        with session_scope(postgres_url) as session:
            lock_tiles(session, model_hash="m", source_name="city", tiles=TILES[2:3])
        second_done.set()

    with session_scope(postgres_url) as first:
        lock_tiles(first, model_hash="m", source_name="city", tiles=TILES)
        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        for _ in range(600):
            if writers_waiting(postgres_url):
                break
            threading.Event().wait(0.05)
        assert writers_waiting(postgres_url) == 1  # the second writer waits on a tile lock ...
        assert not second_done.is_set()
    assert second_done.wait(timeout=60)  # ... until the first commits
    thread.join(timeout=10)
