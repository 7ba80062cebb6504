"""worker.deliveries on a real Redis: how a batch's run markers turn worker deaths into isolation, poison tiles and,
in the end, giving up — each "death" here is a run that began and never called ``ended()``."""

from __future__ import annotations

import pytest

from core.settings import load_settings
from worker.deliveries import RunMarkers, RunMode

pytestmark = pytest.mark.integration


def markers(monkeypatch: pytest.MonkeyPatch, broker: str, *, retries: int = 1) -> RunMarkers:
    monkeypatch.setenv("TILECLASS_BROKER_URL", broker)
    monkeypatch.setenv("TILECLASS_WORKER_MAX_RETRIES", str(retries))
    return RunMarkers(load_settings(), job_id=7, seq=3)


def test_a_run_that_returns_leaves_nothing_and_the_next_one_is_normal(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run = markers(monkeypatch, redis_url)
    assert run.begin() == RunMode()
    run.ended()  # raised, to be retried: its process lives
    assert run.begin() == RunMode()
    run.settled()
    assert run.client.keys("tileclass:*") == []


def test_deaths_isolate_the_batch_then_fail_the_tile_that_killed_it_alone(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run = markers(monkeypatch, redis_url)
    assert run.begin() == RunMode()  # dies somewhere in the batch
    second = run.begin()
    assert second.isolate and not second.poison and second.give_up is None
    run.classifying("16/1/1.jpg")
    run.classified()  # that tile was fine
    run.classifying("16/1/2.jpg")  # and this one killed the worker
    third = run.begin()
    assert third.isolate and third.poison == {"16/1/2.jpg"} and third.give_up is None
    run.classifying("16/1/5.jpg")  # a second poison tile in the same batch
    fourth = run.begin()
    assert fourth.poison == {"16/1/2.jpg", "16/1/5.jpg"} and fourth.give_up is None
    run.settled()
    assert run.begin() == RunMode()


def test_deaths_before_any_tile_are_bounded_by_the_retries_setting(
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run = markers(monkeypatch, redis_url, retries=2)
    modes = [run.begin() for _ in range(4)]  # every run dies loading the model, say
    assert [m.give_up for m in modes] == [None, None, None, 3]
    assert all(m.isolate for m in modes[1:])


def test_markers_are_a_safeguard_an_unreachable_redis_never_fails_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    run = markers(monkeypatch, "redis://127.0.0.1:1/0")
    assert run.begin() == RunMode()
    run.classifying("16/1/1.jpg")
    run.settled()
    assert markers(monkeypatch, "filesystem://").client is None  # the embedded broker has none
