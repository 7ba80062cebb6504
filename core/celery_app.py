"""The Celery app of a deployment, built on demand: importing this module builds nothing and writes nothing.

Delivery is at least once: acks are late, a worker prefetches one message, and a message whose worker died is
rejected back to the queue. Results are upserts, so a message that runs twice does no harm. Messages are JSON
only; a message in any other format (pickle above all) is refused by the worker.

``make_app`` only configures. The embedded broker (``filesystem://``) keeps its messages in folders under
``TILECLASS_DATA_DIR``; they are made when something is about to connect: ``connected_app`` for producers, the
worker's start-up (``worker.app``) for workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from core.messages import CLASSIFY_QUEUE, CLASSIFY_TASK, CLASSIFY_TASK_V1, QUEUES, TRAIN_QUEUE, TRAIN_TASK
from core.settings import Settings, get_settings


def _queue(name: str) -> Queue:
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def _embedded_folders(settings: Settings) -> dict[str, str]:
    folder = str(settings.broker_dir.resolve())
    # Without control_folder kombu keeps its exchange table in ./control of whatever the working directory is.
    control = str(settings.broker_dir.resolve().parent / "broker-control")
    return {"data_folder_in": folder, "data_folder_out": folder, "control_folder": control}


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
        # An idle worker lists the folder every polling_interval seconds (kombu's default 1 s would delay the
        # start of every job by up to a second; ten cheap directory listings a second cost nothing).
        transport_options |= _embedded_folders(settings) | {"polling_interval": 0.1}
    classify_route = {"queue": CLASSIFY_QUEUE}
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
        "task_routes": {CLASSIFY_TASK: classify_route, CLASSIFY_TASK_V1: classify_route,
                        TRAIN_TASK: {"queue": TRAIN_QUEUE}},
        "worker_send_task_events": settings.worker_task_events,
        "worker_hijack_root_logger": False,
    }


def make_app(settings: Settings | None = None) -> Celery:
    """A configured Celery app (no connection, nothing on disk)."""
    app = Celery("tileclass")
    app.conf.update(celery_config(settings or get_settings()))
    return app


def prepare_broker(settings: Settings) -> None:
    """Make the embedded broker's folders before the first connection (nothing to do for a broker server)."""
    if settings.is_embedded_broker:
        for folder in set(_embedded_folders(settings).values()):
            Path(folder).mkdir(parents=True, exist_ok=True)


def connected_app(settings: Settings | None = None) -> Celery:
    """The app a producer publishes with: configured, and its embedded broker's folders in place."""
    settings = settings or get_settings()
    prepare_broker(settings)
    return make_app(settings)


def queued_messages(queue: str, celery_app: Celery) -> int:
    """How many messages wait in ``queue`` (not counting those a worker holds unacknowledged)."""
    with celery_app.connection_for_write() as connection:
        _, count, _ = _queue(queue).bind(connection.default_channel).queue_declare()
    return int(count)


def broker_depths(celery_app: Celery, queues: tuple[str, ...] = QUEUES) -> tuple[dict[str, int], int | None]:
    """Messages waiting per queue, and (Redis only, else None) messages delivered but not yet acknowledged, over
    one connection that gives up after one failed attempt (a metrics scrape must not hang on a dead broker)."""
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.5, interval_max=0.5)
        channel = connection.default_channel
        waiting = {name: int(_queue(name).bind(channel).queue_declare()[1]) for name in queues}
        unacked = None
        if connection.transport.driver_type == "redis":  # kombu keeps delivered, unacknowledged messages in a hash
            unacked = int(channel.client.hlen(channel.unacked_key))
    return waiting, unacked
