"""``GET /metrics`` of the HTTP server: the fleet exporter's registry (queue depth, job progress) through httpx
against the app, with a real Redis and PostgreSQL; behind the token like every route but the health checks."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.config import ServeConfig
from core import jobs
from core.celery_app import connected_app
from core.db import session_scope
from core.messages import CLASSIFY_TASK
from core.settings import get_settings
from tests.api.conftest import client_for

pytestmark = pytest.mark.integration


def test_metrics_serves_the_queue_depth_and_each_jobs_tiles_and_asks_for_the_token(
        redis_url: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_BROKER_URL", redis_url)
    monkeypatch.setenv("TILECLASS_DATABASE_URL", postgres_url)
    get_settings.cache_clear()
    with session_scope() as session:
        job = jobs.create_job(session).id
        jobs.record_batches_enqueued(session, job_id=job, batches=[(0, 5), (1, 5)])
        jobs.record_batch_done(session, job_id=job, seq=0, tiles=5, classified=4, failed=1)
        jobs.finish_enqueue(session, job_id=job, total_tiles=10, total_batches=2, skipped=0)
    for seq in range(2):
        connected_app(get_settings()).send_task(CLASSIFY_TASK, kwargs={"batch": {"seq": seq}})

    with client_for(ServeConfig(token="s3cret-token")) as client:
        assert client.get("/metrics").status_code == 401
        response = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text) for s in family.samples}
    assert samples[("tileclass_queue_batches", (("queue", "classify"),))] == 2
    assert samples[("tileclass_up", (("component", "database"),))] == 1
    assert {state: samples[("tileclass_job_tiles", (("job", str(job)), ("state", state)))]
            for state in ("classified", "failed", "empty", "pending")} == {
        "classified": 4, "failed": 1, "empty": 0, "pending": 5}
