"""The Celery app of a deployment, built on demand: importing this module builds nothing and writes nothing.

Delivery is at least once: acks are late, a worker prefetches one message, and a message whose worker died is
rejected back to the queue. Results are upserts, so a message that runs twice does no harm. Messages are JSON
only; a message in any other format (pickle above all) is refused by the worker.

``make_app`` only configures. The embedded broker (``filesystem://``) keeps its messages in folders under
``TILECLASS_DATA_DIR``; they are made when something is about to connect: ``connected_app`` for producers, the
worker's start-up (``worker.app``) for workers.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from core.broker import declare_queue, prepare_folders, transport_options
from core.messages import CLASSIFY_QUEUE, CLASSIFY_TASK, CLASSIFY_TASK_V1, QUEUES, TRAIN_QUEUE, TRAIN_TASK
from core.settings import Settings, get_settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for a deployment; the embedded broker keeps its messages under ``data_dir``."""
    classify_route = {"queue": CLASSIFY_QUEUE}
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport_options(settings),
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_queues": [declare_queue(name) for name in QUEUES],
        "task_default_queue": CLASSIFY_QUEUE,
        "task_routes": {CLASSIFY_TASK: classify_route, CLASSIFY_TASK_V1: classify_route,
                        TRAIN_TASK: {"queue": TRAIN_QUEUE}},
        "worker_send_task_events": settings.worker.task_events,
        "worker_hijack_root_logger": False,
    }


def make_app(settings: Settings | None = None) -> Celery:
    """A configured Celery app (no connection, nothing on disk)."""
    app = Celery("tileclass")
    app.conf.update(celery_config(settings or get_settings()))
    return app


def prepare_broker(settings: Settings) -> None:
    """Make the embedded broker's folders before the first connection (nothing to do for a broker server)."""
    prepare_folders(settings)


def connected_app(settings: Settings | None = None) -> Celery:
    """The app a producer publishes with: configured, and its embedded broker's folders in place."""
    settings = settings or get_settings()
    prepare_broker(settings)
    return make_app(settings)


def queued_messages(queue: str, celery_app: Celery) -> int:
    """How many messages wait in ``queue`` (not counting those a worker holds unacknowledged)."""
    with celery_app.connection_for_write() as connection:
        _, count, _ = declare_queue(queue).bind(connection.default_channel).queue_declare()
    return int(count)

