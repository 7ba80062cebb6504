"""The Celery app and the producer/worker contract: task names, queues and payload shapes.

The producer sends tasks by name and never imports the worker (or torch). Messages are JSON only; a message in
any other format (pickle above all) is refused by the worker. Payloads are compact: a classify batch carries
the job, the model's content hash, a tile root name and ``[z, x, y, relative_path]`` rows (``z, x, y`` null for
tiles without coordinates) — never pixels::

    {"job_id": 7, "seq": 12, "model_hash": "3fa9…", "root": "ortho2024",
     "tiles": [[17, 70420, 42997, "17/70420/42997.png"], [null, null, null, "scans/a.jpg"]]}

Delivery is at least once: acks are late, a worker prefetches one message, and a message whose worker died is
rejected back to the queue. Results are upserts, so a message that runs twice does no harm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from core.settings import Settings, get_settings

CLASSIFY_QUEUE = "classify"
TRAIN_QUEUE = "train"
QUEUES = (CLASSIFY_QUEUE, TRAIN_QUEUE)
CLASSIFY_TASK = "tileclass.classify_batch"
TRAIN_TASK = "tileclass.train"

TileRow = tuple[int | None, int | None, int | None, str]


@dataclass(frozen=True)
class ClassifyBatch:
    """One batch of tiles of one job, for one model."""

    job_id: int
    seq: int
    model_hash: str
    root: str
    tiles: list[TileRow]

    def to_message(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "seq": self.seq, "model_hash": self.model_hash, "root": self.root,
                "tiles": [list(row) for row in self.tiles]}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> ClassifyBatch:
        tiles: list[TileRow] = []
        for row in message["tiles"]:
            z, x, y, path = row
            if not isinstance(path, str) or not all(v is None or isinstance(v, int) for v in (z, x, y)):
                raise ValueError(f"malformed tile row {row!r}")
            tiles.append((z, x, y, path))
        return cls(job_id=int(message["job_id"]), seq=int(message["seq"]), model_hash=str(message["model_hash"]),
                   root=str(message["root"]), tiles=tiles)


@dataclass(frozen=True)
class TrainRequest:
    """A training run for a worker on the ``train`` queue; ``config`` holds model.train.TrainConfig's fields."""

    job_id: int
    data_dir: str
    config: dict[str, Any] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> TrainRequest:
        return cls(job_id=int(message["job_id"]), data_dir=str(message["data_dir"]),
                   config=dict(message.get("config") or {}))


def _queue(name: str) -> Queue:
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for a deployment; the embedded broker keeps its messages under ``data_dir``."""
    transport_options: dict[str, Any] = {"visibility_timeout": settings.visibility_timeout}
    if settings.broker_url.startswith(("redis://", "rediss://")):
        # Kombu scans for messages whose worker died every interval x throttle seconds (10 x 10 by default), so
        # with a short visibility timeout a message would wait far longer than the timeout itself: scan about
        # ten times per timeout (at most every 10 s). The scan is one indexed ZRANGE under a mutex: cheap.
        transport_options |= {"unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 10)),
                              "unacked_restore_throttle": 1}
    if settings.is_embedded_broker:
        folder = settings.broker_dir.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        control = settings.broker_dir.resolve().parent / "broker-control"
        control.mkdir(parents=True, exist_ok=True)
        # Without control_folder kombu keeps its exchange table in ./control of whatever the working directory is.
        # An idle worker lists the folder every polling_interval seconds (kombu's default 1 s would delay the
        # start of every job by up to a second; ten cheap directory listings a second cost nothing).
        transport_options |= {"data_folder_in": str(folder), "data_folder_out": str(folder),
                              "control_folder": str(control), "polling_interval": 0.1}
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_queues": [_queue(name) for name in QUEUES],
        "task_default_queue": CLASSIFY_QUEUE,
        "task_routes": {CLASSIFY_TASK: {"queue": CLASSIFY_QUEUE}, TRAIN_TASK: {"queue": TRAIN_QUEUE}},
        "worker_send_task_events": False,
        "worker_hijack_root_logger": False,
    }


def make_app(settings: Settings | None = None) -> Celery:
    app = Celery("tileclass")
    app.conf.update(celery_config(settings or get_settings()))
    return app


app = make_app()


def queued_messages(queue: str = CLASSIFY_QUEUE, celery_app: Celery | None = None) -> int:
    """How many messages wait in ``queue`` (not counting those a worker holds unacknowledged)."""
    celery_app = celery_app or app
    with celery_app.connection_for_write() as connection:
        _, count, _ = _queue(queue).bind(connection.default_channel).queue_declare()
    return int(count)
