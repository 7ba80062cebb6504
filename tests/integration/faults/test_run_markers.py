"""worker.deliveries on a real Redis: how a batch's run markers turn worker deaths into isolation, poison tiles and,
in the end, giving up. Each run here is its own ``RunMarkers``; a "death" is a run whose heartbeat stops and whose
alive key is gone, as after SIGKILL once the key's TTL has passed (the last test does it with a real process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from core.settings import load_settings
from worker.deliveries import RunMarkers, RunMode

pytestmark = pytest.mark.integration


def markers(monkeypatch: pytest.MonkeyPatch, broker: str, *, retries: int = 1) -> RunMarkers:
    monkeypatch.setenv("TILECLASS_BROKER_URL", broker)
    monkeypatch.setenv("TILECLASS_WORKER_MAX_RETRIES", str(retries))
    return RunMarkers(load_settings(), job_id=7, seq=3)


def die(run: RunMarkers) -> None:
    """The run's process is gone: no heartbeat, and its alive key has lapsed."""
    assert run.heartbeat is not None and run.client is not None
    run.heartbeat.stop()
    run.client.delete(run.alive)


def test_a_run_that_returns_leaves_nothing_and_the_next_one_is_normal(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = markers(monkeypatch, redis_url)
    assert first.begin() == RunMode()
    first.ended()  # raised, to be retried: its process lives
    second = markers(monkeypatch, redis_url)
    assert second.begin() == RunMode()
    second.settled()
    assert second.client.keys("tileclass:*") == []


def test_deaths_isolate_the_batch_then_fail_the_tile_that_killed_it_alone(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = markers(monkeypatch, redis_url)
    assert first.begin() == RunMode()
    die(first)  # somewhere in the batch, all tiles at once: no tile to blame
    second = markers(monkeypatch, redis_url)
    mode = second.begin()
    assert mode.isolate and not mode.poison and mode.give_up is None
    second.classifying("16/1/1.jpg")
    second.classified()  # that tile was fine
    second.classifying("16/1/2.jpg")  # and this one killed the worker
    die(second)
    third = markers(monkeypatch, redis_url)
    mode = third.begin()
    assert mode.isolate and mode.poison == {"16/1/2.jpg"} and mode.give_up is None
    third.classifying("16/1/5.jpg")  # a second poison tile in the same batch
    die(third)
    fourth = markers(monkeypatch, redis_url)
    mode = fourth.begin()
    assert mode.poison == {"16/1/2.jpg", "16/1/5.jpg"} and mode.give_up is None
    fourth.settled()
    fifth = markers(monkeypatch, redis_url)
    assert fifth.begin() == RunMode()
    fifth.settled()


def test_a_slow_run_that_is_still_alive_is_isolated_around_but_its_tile_is_never_failed(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    slow = markers(monkeypatch, redis_url)
    slow.begin()
    slow.classifying("16/1/9.jpg")  # outlives the visibility timeout: Redis hands the batch to another worker
    other = markers(monkeypatch, redis_url)
    mode = other.begin()
    assert mode.isolate and mode.poison == frozenset() and mode.give_up is None
    assert slow.client.sismember(slow.runs, slow.run_id)  # not claimed: it may still die and be counted then
    die(slow)
    third = markers(monkeypatch, redis_url)
    assert third.begin().poison == {"16/1/9.jpg"}
    for run in (other, third):
        run.settled()


def test_deaths_before_any_tile_are_bounded_by_the_retries_setting(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    modes = []
    for _ in range(4):  # every run dies loading the model, say
        run = markers(monkeypatch, redis_url, retries=2)
        modes.append(run.begin())
        die(run)
    assert [m.give_up for m in modes] == [None, None, None, 3]
    assert all(m.isolate for m in modes[1:])
    run.settled()


def test_runs_that_find_one_dead_run_at_once_count_its_death_once(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = markers(monkeypatch, redis_url)
    dead.begin()
    dead.classifying("16/1/3.jpg")
    die(dead)
    runs = [markers(monkeypatch, redis_url) for _ in range(8)]
    modes: list[RunMode] = []
    start = threading.Barrier(len(runs))

    def begin(run: RunMarkers) -> None:
        start.wait()
        modes.append(run.begin())

    threads = [threading.Thread(target=begin, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(m.poison == {"16/1/3.jpg"} for m in modes)
    assert runs[0].client.get(runs[0].blind) is None  # the death was the tile's, counted once, never a blind one
    for run in runs:
        run.ended()
    assert runs[0].client.smembers(runs[0].runs) == set()
    runs[0].settled()


def test_a_killed_process_is_found_dead_once_its_heartbeat_lapses(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "TILECLASS_BROKER_URL": redis_url, "TILECLASS_VISIBILITY_TIMEOUT": "10"}
    script = textwrap.dedent("""
        import sys, time
        from core.settings import load_settings
        from worker.deliveries import RunMarkers
        run = RunMarkers(load_settings(), job_id=7, seq=3)
        run.begin()
        run.classifying("16/1/4.jpg")
        print(run.run_id, flush=True)
        time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        child_run = child.stdout.readline().strip() if child.stdout else ""
        monkeypatch.setenv("TILECLASS_VISIBILITY_TIMEOUT", "10")
        time.sleep(4)  # longer than the 3 s alive TTL: only the heartbeat keeps the key
        alive = markers(monkeypatch, redis_url)
        assert alive.alive_ttl == 3 and alive.client.exists(alive.alive_key(child_run))
        assert alive.begin().poison == frozenset()  # a live run, isolated around but not blamed
        alive.ended()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive.client.exists(alive.alive_key(child_run)) and time.monotonic() < deadline:
            time.sleep(0.2)
        after = markers(monkeypatch, redis_url)
        assert after.begin().poison == {"16/1/4.jpg"}
        after.settled()
    finally:
        child.kill()
        child.wait(timeout=10)


def test_markers_are_a_safeguard_an_unreachable_redis_never_fails_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    run = markers(monkeypatch, "redis://127.0.0.1:1/0")
    assert run.begin() == RunMode()
    run.classifying("16/1/1.jpg")
    run.settled()
    assert markers(monkeypatch, "filesystem://").client is None  # the embedded broker has none
