"""The broker as kombu sees it, without Celery: queues, transport options, connections, and how full it is.

Celery's app (``core.celery_app``) is configured from these; the metrics exporter (``core.metrics.fleet``), which the
HTTP server also serves and which must not load Celery, opens its own kombu ``Connection`` with them. Each queue is
a direct exchange of the same name (on Redis: a list named like the queue; messages delivered and not yet
acknowledged wait in the ``unacked`` hash).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kombu import Connection, Exchange, Queue
from kombu.utils.url import maybe_sanitize_url

from core.messages import QUEUES
from core.settings import Settings


def declare_queue(name: str) -> Queue:
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def embedded_folders(settings: Settings) -> dict[str, str]:
    """The embedded broker's folders under ``data_dir``, as kombu's filesystem transport options."""
    folder = str(settings.broker_dir.resolve())
    # Without control_folder kombu keeps its exchange table in ./control of whatever the working directory is.
    control = str(settings.broker_dir.resolve().parent / "broker-control")
    return {"data_folder_in": folder, "data_folder_out": folder, "control_folder": control}


def describe_broker(settings: Settings) -> str:
    """The broker as a person should see it: the embedded one with its absolute folder (it is relative to the
    working directory by default), a broker server by its URL without the password."""
    if settings.is_embedded_broker:
        return f"{settings.broker_url} (folder {embedded_folders(settings)['data_folder_in']})"
    return maybe_sanitize_url(settings.broker_url)


def prepare_folders(settings: Settings) -> None:
    """Make the embedded broker's folders before the first connection (nothing to do for a broker server)."""
    if settings.is_embedded_broker:
        for folder in set(embedded_folders(settings).values()):
            Path(folder).mkdir(parents=True, exist_ok=True)


def is_redis(settings: Settings) -> bool:
    """Whether the deployment's broker is a Redis server (``redis://`` or, with TLS, ``rediss://``)."""
    return settings.broker_url.startswith(("redis://", "rediss://"))


def redis_client(settings: Settings, *, timeout: float, **options: Any) -> Any:
    """A client of the Redis broker's database (``TILECLASS_BROKER_URL``), whose connects and replies wait at most
    ``timeout`` seconds (``options``: more of redis-py's); None when the broker is not Redis. Nothing connects yet.

    The one way tileclass talks to Redis besides kombu: the workers' run markers (``worker.deliveries``), the broker's
    credentials check (``worker.brokercheck``) and a tile server's shared rate limit (``core.sources.url``).
    """
    if not is_redis(settings):
        return None
    import redis

    return redis.Redis.from_url(settings.broker_url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                **options)


def transport_options(settings: Settings) -> dict[str, Any]:
    """kombu transport options of a deployment's broker."""
    options: dict[str, Any] = {"visibility_timeout": settings.visibility_timeout}
    if is_redis(settings):
        # Kombu scans for messages whose worker died every interval x throttle seconds (10 x 10 by default), so
        # with a short visibility timeout a message would wait far longer than the timeout itself: scan about
        # ten times per timeout (at most every 10 s). The scan is one indexed ZRANGE under a mutex: cheap.
        options |= {"unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 10)),
                    "unacked_restore_throttle": 1}
    if settings.is_embedded_broker:
        # An idle worker lists the folder every polling_interval seconds (kombu's default 1 s would delay the
        # start of every job by up to a second; ten cheap directory listings a second cost nothing).
        options |= embedded_folders(settings) | {"polling_interval": 0.1}
    return options


def connect(settings: Settings) -> Connection:
    """A kombu connection to the deployment's broker (lazy: nothing is opened until it is used)."""
    prepare_folders(settings)
    return Connection(settings.broker_url, transport_options=transport_options(settings))


def broker_depths(connection: Connection, queues: tuple[str, ...] = QUEUES) -> tuple[dict[str, int], int | None]:
    """Messages waiting per queue, and (Redis only, else None) messages delivered but not yet acknowledged.

    Gives up after one failed attempt to connect: a metrics scrape must not hang on a dead broker.
    """
    connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.5, interval_max=0.5)
    channel: Any = connection.default_channel  # kombu's Redis channel has the client and the unacked hash's key
    waiting = {name: int(declare_queue(name).bind(channel).queue_declare()[1]) for name in queues}
    unacked = None
    if connection.transport.driver_type == "redis":
        unacked = int(channel.client.hlen(channel.unacked_key))
    return waiting, unacked
