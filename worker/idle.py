"""Where a worker reads its work from, said at its start, and a warning when it looks like it waits for nothing.

Started without the producer's settings (in another folder, or with no ``TILECLASS_BROKER_URL`` and
``TILECLASS_DATABASE_URL``), a worker makes its own embedded broker and SQLite file where it runs, and waits on an
empty queue for ever. So every worker logs, at its start, the absolute broker folder (or the broker's URL without
its password) and results database it uses; and one that has received no task for
``TILECLASS_WORKER_IDLE_WARNING`` seconds, while its database holds no job, warns once that it may not share the
producer's broker and database. The watch is one sleeping thread and one query at the end of the wait.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import task_received
from sqlalchemy import inspect, select
from sqlalchemy.exc import SQLAlchemyError

from core.broker import describe_broker
from core.db import describe_database, get_engine, session_scope
from core.schema import Job
from core.settings import Settings

log = logging.getLogger(__name__)


def where_it_reads(settings: Settings) -> str:
    """The broker and the results database, as a person should see them (absolute paths, no password)."""
    return f"broker {describe_broker(settings)}, results database {describe_database(settings.database_url)}"


def start(worker: str, settings: Settings) -> threading.Thread | None:
    """Say where ``worker`` (its Celery node name) reads from, below Celery's banner whose transport line says only
    ``filesystem://``, and start the watch (its thread; None when the setting turns it off)."""
    log.info("%s reads the %s", worker, where_it_reads(settings))
    if not settings.worker.idle_warning:
        return None
    watch = IdleWatch(worker, settings)
    task_received.connect(watch.task_received, weak=False)  # sent in the consumer, whatever the pool
    thread = threading.Thread(target=watch.run, name="tileclass-idle-watch", daemon=True)
    thread.start()
    return thread


class IdleWatch:
    """Warns once if no task reaches ``worker`` within the setting's seconds while its database holds no job."""

    def __init__(self, worker: str, settings: Settings) -> None:
        self.worker, self.settings = worker, settings
        self.received = threading.Event()  # a task reached the worker: it is connected to a producer's queue

    def task_received(self, **_: Any) -> None:
        self.received.set()

    def run(self) -> None:
        """Wait (a thread blocked on an event: no polling), then look for a job once."""
        waited = self.settings.worker.idle_warning
        if self.received.wait(waited) or holds_a_job(self.settings):
            return
        log.warning("%s has had no task in %g s and its results database holds no job: it may not share the "
                    "producer's broker and database. It reads the %s; start it in the folder where you ran "
                    "'tileclass enqueue', or give it the same TILECLASS_BROKER_URL and TILECLASS_DATABASE_URL.",
                    self.worker, waited, where_it_reads(self.settings))


def holds_a_job(settings: Settings) -> bool:
    """Whether the results database has a job (a fresh file without the tables has none). A database that cannot
    be read says nothing either way, so it counts as holding one: the warning is for the plain mistake only."""
    try:
        if not inspect(get_engine(settings.database_url)).has_table(Job.__tablename__):
            return False
        with session_scope(settings.database_url, read_only=True) as session:
            return session.scalar(select(Job.id).limit(1)) is not None
    except SQLAlchemyError as exc:
        log.debug("could not look for jobs: %s", exc)
        return True
