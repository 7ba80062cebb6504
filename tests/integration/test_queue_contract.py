"""The Celery contract: JSON-only, late acks, and compact messages on a real Redis."""

from __future__ import annotations

import json

import pytest
import redis

from core.queue import CLASSIFY_QUEUE, CLASSIFY_TASK, ClassifyBatch, make_app, queued_messages
from core.settings import load_settings

pytestmark = pytest.mark.integration


def test_app_is_json_only_with_late_acks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_VISIBILITY_TIMEOUT", "77")
    conf = make_app(load_settings()).conf
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == "json"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == 77
    assert {q.name for q in conf.task_queues} == {"classify", "train"}


def test_batch_message_round_trips_and_rejects_malformed_rows() -> None:
    tiles: list = [(17, 1, 2, "17/1/2.png"), (None, None, None, "a.jpg")]
    batch = ClassifyBatch(job_id=3, seq=0, model_hash="ab", root="r", tiles=tiles)
    assert ClassifyBatch.from_message(json.loads(json.dumps(batch.to_message()))) == batch
    with pytest.raises(ValueError, match="malformed tile row"):
        ClassifyBatch.from_message({"job_id": 1, "seq": 0, "model_hash": "x", "root": "r", "tiles": [[1, 2, "3", "p"]]})


def test_sent_batch_sits_in_redis_as_compact_json(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_BROKER_URL", redis_url)
    app = make_app(load_settings())
    batch = ClassifyBatch(job_id=1, seq=0, model_hash="f" * 64, root="ortho",
                          tiles=[(17, 70420, 42997 + i, f"17/70420/{42997 + i}.png") for i in range(64)])
    for _ in range(3):
        app.send_task(CLASSIFY_TASK, kwargs={"batch": batch.to_message()})
    assert queued_messages(CLASSIFY_QUEUE, app) == 3
    raw = redis.Redis.from_url(redis_url).lindex(CLASSIFY_QUEUE, 0)
    envelope = json.loads(raw)
    assert envelope["content-type"] == "application/json"
    assert envelope["headers"]["task"] == CLASSIFY_TASK
    assert len(raw) < 8_000  # coordinates and paths, never pixels


def test_embedded_broker_needs_no_server(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    app = make_app(settings)
    app.send_task(CLASSIFY_TASK, kwargs={"batch": {"job_id": 1, "model_hash": "x", "root": "r", "tiles": []}})
    assert queued_messages(CLASSIFY_QUEUE, app) == 1
    assert any(settings.broker_dir.resolve().iterdir())
    assert not (tmp_path / "control").exists()  # kombu's exchange table stays under the data dir
