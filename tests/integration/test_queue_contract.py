"""The Celery contract: JSON-only, late acks, versioned compact messages on a real Redis, and an app that touches
nothing on disk until something connects."""

from __future__ import annotations

import json

import pytest
import redis

from core.celery_app import connected_app, make_app, queued_messages
from core.messages import CLASSIFY_QUEUE, CLASSIFY_TASK, CLASSIFY_TASK_V1, ClassifyBatch, TrainRequest
from core.settings import load_settings
from core.tiles import Tile

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


def test_batch_message_round_trips_with_its_format_and_rejects_malformed_rows() -> None:
    tiles = [Tile(17, 1, 2, "17/1/2.png"), Tile(None, None, None, "a.jpg"), Tile(17, 1, 3)]
    batch = ClassifyBatch(job_id=3, seq=0, model_hash="ab", source="r", tiles=tiles)
    message = json.loads(json.dumps(batch.to_message()))
    assert message["format"] == 2 and message["source"] == "r" and message["tiles"][2] == [17, 1, 3, None]
    assert ClassifyBatch.from_message(message) == batch
    for row, problem in (([1, 2, "3", "p"], "coordinates"), ([1, 2, 9, "p"], "coordinates"),
                         ([None, None, None, None], "needs a path"), ([1, 2, 3], "expected")):
        with pytest.raises(ValueError, match=f"malformed tile row.*{problem}"):
            ClassifyBatch.from_message(message | {"tiles": [row]})
    with pytest.raises(ValueError, match="unknown classify message format 3"):
        ClassifyBatch.from_message(message | {"format": 3})


def test_numbers_beyond_the_integer_columns_and_nul_bytes_are_malformed() -> None:
    """What would pass as JSON but not into PostgreSQL (int4 ids and batch numbers, text without NUL) is refused
    here, so a worker drops it at once instead of retrying a database error."""
    message = ClassifyBatch(3, 0, "ab", "r", [Tile(17, 1, 2, "17/1/2.png")]).to_message()
    assert ClassifyBatch.from_message(message | {"job_id": 2**31 - 1, "seq": 2**31 - 1}).seq == 2**31 - 1
    for key, value in (("seq", 2**62), ("seq", 2**31), ("job_id", 2**31), ("seq", -1)):
        with pytest.raises(ValueError, match=rf"^{key} must be an integer 0\.\.2147483647, not {value}$"):
            ClassifyBatch.from_message(message | {key: value})
    for key in ("model_hash", "source"):
        with pytest.raises(ValueError, match=f"{key} must be a non-empty string without NUL bytes"):
            ClassifyBatch.from_message(message | {key: "a\0b"})
    with pytest.raises(ValueError, match="a path cannot contain a NUL byte"):
        ClassifyBatch.from_message(message | {"tiles": [[17, 1, 2, "17/1/2\0.png"]]})
    with pytest.raises(ValueError, match=r"^job_id must be an integer 0\.\.2147483647"):
        TrainRequest.from_message({"format": 1, "job_id": 2**40, "data_dir": "/data"})


def test_a_format_1_message_left_in_a_queue_reads_as_the_same_batch() -> None:
    """What producers before format 2 sent: no format key, the source under 'root', every tile with a path."""
    old = {"job_id": 7, "seq": 2, "model_hash": "ab", "root": "ortho", "tiles": [[17, 1, 2, "17/1/2.png"]]}
    assert ClassifyBatch.from_message(old) == ClassifyBatch(7, 2, "ab", "ortho", [Tile(17, 1, 2, "17/1/2.png")])
    with pytest.raises(ValueError, match="format 1 classify message must give every tile a path"):
        ClassifyBatch.from_message(old | {"tiles": [[17, 1, 2, None]]})
    assert CLASSIFY_TASK != CLASSIFY_TASK_V1  # format 2 has a name a format 1 worker does not know


def test_train_requests_carry_their_format() -> None:
    request = TrainRequest(4, "/data", {"epochs": 2})
    assert request.to_message()["format"] == 1
    assert TrainRequest.from_message(request.to_message()) == request
    with pytest.raises(ValueError, match="unknown train message format 2"):
        TrainRequest.from_message(request.to_message() | {"format": 2})


def test_sent_batch_sits_in_redis_as_compact_json(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TILECLASS_BROKER_URL", redis_url)
    app = make_app(load_settings())
    batch = ClassifyBatch(job_id=1, seq=0, model_hash="f" * 64, source="ortho",
                          tiles=[Tile(17, 70420, 42997 + i, f"17/70420/{42997 + i}.png") for i in range(64)])
    for _ in range(3):
        app.send_task(CLASSIFY_TASK, kwargs={"batch": batch.to_message()})
    assert queued_messages(CLASSIFY_QUEUE, app) == 3
    raw = redis.Redis.from_url(redis_url).lindex(CLASSIFY_QUEUE, 0)
    envelope = json.loads(raw)
    assert envelope["content-type"] == "application/json"
    assert envelope["headers"]["task"] == CLASSIFY_TASK
    assert len(raw) < 8_000  # coordinates and paths, never pixels


def test_embedded_broker_needs_no_server_and_makes_its_folders_only_to_connect(tmp_path) -> None:
    settings = load_settings()
    make_app(settings)
    assert list(tmp_path.iterdir()) == []  # configuring an app writes nothing
    app = connected_app(settings)
    app.send_task(CLASSIFY_TASK, kwargs={"batch": {"job_id": 1, "model_hash": "x", "root": "r", "tiles": []}})
    assert queued_messages(CLASSIFY_QUEUE, app) == 1
    assert any(settings.broker_dir.resolve().iterdir())
    assert not (tmp_path / "control").exists()  # kombu's exchange table stays under the data dir
