"""The fleet exporter (core.metrics.fleet) against a real Redis and PostgreSQL: queue depth, job progress, tiles/s.

Jobs and batches are written with the same core.jobs functions the producer and the workers use; messages are sent
to the real broker and left there, so the exporter must count them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from core import jobs
from core.celery_app import connected_app
from core.db import session_scope
from core.messages import CLASSIFY_QUEUE, CLASSIFY_TASK, TRAIN_QUEUE, TRAIN_TASK
from core.metrics.fleet import RECENT_MINUTES, fleet_registry
from core.schema import Job, JobKind, JobState, utcnow
from core.settings import Settings, get_settings
from tests.factories import folder_source

pytestmark = pytest.mark.integration


def scrape(settings: Settings | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape: (name, sorted labels) -> value."""
    text = generate_latest(fleet_registry(settings)).decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def job_with_batches(*, done: list[tuple[int, int, int]], queued: int, tiles_per_batch: int = 10,
                     finished: bool = True) -> int:
    """A classify job whose batches are ``done`` (classified, failed, empty each) plus ``queued`` waiting ones."""
    with session_scope() as session:
        job_id = jobs.create_job(session, source=folder_source(Path("/tiles"), name="ortho")).id
        seqs = list(range(len(done) + queued))
        jobs.record_batches_enqueued(session, job_id=job_id, batches=[(seq, tiles_per_batch) for seq in seqs])
        for seq, (classified, failed, empty) in enumerate(done):
            jobs.record_batch_done(session, job_id=job_id, seq=seq, tiles=tiles_per_batch, classified=classified,
                                   failed=failed, empty=empty)
        if finished:
            jobs.finish_enqueue(session, job_id=job_id, total_tiles=tiles_per_batch * len(seqs),
                                total_batches=len(seqs), skipped=0)
    return job_id


def test_the_exporter_reports_waiting_batches_per_queue_and_each_jobs_tiles(
        redis_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_BROKER_URL", redis_url)
    monkeypatch.setenv("TILECLASS_DATABASE_URL", postgres_url)
    get_settings.cache_clear()
    app = connected_app(get_settings())
    for seq in range(3):
        app.send_task(CLASSIFY_TASK, kwargs={"batch": {"seq": seq}}, queue=CLASSIFY_QUEUE)
    app.send_task(TRAIN_TASK, kwargs={"request": {}}, queue=TRAIN_QUEUE)
    running = job_with_batches(done=[(8, 1, 1), (10, 0, 0)], queued=2)
    old = job_with_batches(done=[(10, 0, 0)], queued=0)
    recent = job_with_batches(done=[(9, 1, 0)], queued=0)
    with session_scope() as session:
        assert jobs.refresh_state(session, job_id=old) == JobState.COMPLETED
        session.execute(update(Job).where(Job.id == old).values(
            finished_at=utcnow() - timedelta(minutes=RECENT_MINUTES + 1)))

    samples = scrape()

    assert samples[("tileclass_up", (("component", "broker"),))] == 1
    assert samples[("tileclass_up", (("component", "database"),))] == 1
    assert samples[("tileclass_queue_batches", (("queue", "classify"),))] == 3
    assert samples[("tileclass_queue_batches", (("queue", "train"),))] == 1
    assert samples[("tileclass_queue_unacked_batches", ())] == 0
    job = str(running)
    tiles = {state: samples[("tileclass_job_tiles", (("job", job), ("state", state)))]
             for state in ("classified", "failed", "empty", "pending")}
    assert tiles == {"classified": 18, "failed": 1, "empty": 1, "pending": 20}
    assert samples[("tileclass_job_info", (("job", job), ("kind", JobKind.CLASSIFY), ("model", ""),
                                           ("source", "ortho"), ("state", "queued")))] == 1
    # 20 tiles finished within the last minute by this job, 10 by the recently completed one
    assert samples[("tileclass_job_tiles_per_second", (("job", job),))] == pytest.approx(20 / 60)
    assert samples[("tileclass_tiles_per_second", ())] == pytest.approx(30 / 60)
    assert ("tileclass_job_tiles", (("job", str(recent)), ("state", "classified"))) in samples
    assert not any(dict(labels).get("job") == str(old) for _, labels in samples), "a job finished long ago"


def test_a_broker_that_is_down_turns_its_up_gauge_to_zero_and_the_jobs_are_still_exported(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.faults.harness import free_port

    monkeypatch.setenv("TILECLASS_DATABASE_URL", postgres_url)
    monkeypatch.setenv("TILECLASS_BROKER_URL", f"redis://127.0.0.1:{free_port(17400)}/0")  # nothing listens
    get_settings.cache_clear()
    job = job_with_batches(done=[(10, 0, 0)], queued=1, finished=False)

    samples = scrape()

    assert samples[("tileclass_up", (("component", "broker"),))] == 0
    assert samples[("tileclass_up", (("component", "database"),))] == 1
    assert not any(name.startswith("tileclass_queue") for name, _ in samples)
    assert samples[("tileclass_job_tiles", (("job", str(job)), ("state", "classified")))] == 10
    info = [dict(labels) for name, labels in samples if name == "tileclass_job_info"]
    assert info == [{"job": str(job), "kind": "classify", "state": "enqueuing", "model": "", "source": "ortho"}]


def test_a_database_that_is_down_turns_its_up_gauge_to_zero(redis_url: str) -> None:
    from tests.integration.faults.harness import free_port

    settings = Settings(broker_url=redis_url,
                        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port(17500)}/none")

    samples = scrape(settings)

    assert samples[("tileclass_up", (("component", "database"),))] == 0
    assert samples[("tileclass_queue_batches", (("queue", "classify"),))] == 0
    assert not any(name.startswith("tileclass_job") for name, _ in samples)
