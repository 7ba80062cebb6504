"""The fleet exporter: batches waiting in the broker and each job's progress, read afresh on every scrape.

``tileclass metrics --port 9561`` serves it on its own; the HTTP server serves the same registry at ``/metrics``
(``fleet_registry()``). It reads, never writes, and imports neither torch, nor
Celery (kombu reads the broker), nor a web framework. Metrics (all gauges)::

    tileclass_up{component="broker"|"database"}                  1 if this scrape could read it, else 0
    tileclass_queue_batches{queue="classify"|"train"}            messages waiting in the broker
    tileclass_queue_unacked_batches                              delivered to a worker, not acknowledged (Redis)
    tileclass_job_tiles{job, state="classified"|"failed"|"empty"|"pending"}   the four add up to the job's total
    tileclass_job_info{job, kind, state, model, source}          1 per exported job: its state and what it runs
    tileclass_job_tiles_per_second{job}                          tiles finished over the last minute
    tileclass_tiles_per_second                                   all jobs together, over the last minute

Which jobs: every job that is not finished (enqueuing, queued, running) and those that finished in the last
``RECENT_MINUTES``, so that a dashboard sees a job reach its end; at most ``MAX_JOBS``, newest first. A broker or
database that cannot be read turns its ``tileclass_up`` to 0 and leaves its metrics out: the scrape still answers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

from kombu.exceptions import OperationalError as BrokerError
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError

from core.broker import broker_depths, connect
from core.db import session_scope
from core.job_progress import progress_of
from core.schema import Job, JobState, utcnow
from core.settings import Settings, get_settings

RECENT_MINUTES = 10
MAX_JOBS = 200
UNFINISHED = (JobState.ENQUEUING, JobState.QUEUED, JobState.RUNNING)
log = logging.getLogger(__name__)


class FleetCollector(Collector):
    """Collects the queue depths and job progress of one deployment (its settings) on every scrape."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings

    @property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("tileclass_up", "Whether the exporter could read a component on this scrape",
                               labels=["component"])
        broker = self._broker()
        up.add_metric(["broker"], 0.0 if broker is None else 1.0)
        database = self._database()
        up.add_metric(["database"], 0.0 if database is None else 1.0)
        yield up
        yield from broker or []
        yield from database or []

    def _broker(self) -> list[GaugeMetricFamily] | None:
        try:
            with connect(self.settings) as connection:
                waiting, unacked = broker_depths(connection)
        except (BrokerError, RedisError, OSError) as exc:
            log.warning("metrics: cannot read the broker: %s", str(exc).splitlines()[0][:200] if str(exc) else exc)
            return None
        queued = GaugeMetricFamily("tileclass_queue_batches", "Batches waiting in the broker, per queue",
                                   labels=["queue"])
        for name, count in waiting.items():
            queued.add_metric([name], float(count))
        families = [queued]
        if unacked is not None:
            families.append(GaugeMetricFamily("tileclass_queue_unacked_batches",
                                              "Batches delivered to workers and not acknowledged yet (all queues)",
                                              value=float(unacked)))
        return families

    def _database(self) -> list[GaugeMetricFamily] | None:
        try:
            with session_scope(self.settings.database_url, read_only=True) as session:
                since = utcnow() - timedelta(minutes=RECENT_MINUTES)
                chosen = list(session.scalars(select(Job).where(
                    or_(Job.state.in_(UNFINISHED), Job.finished_at >= since)).order_by(Job.id.desc()).limit(MAX_JOBS)))
                progress = progress_of(session, chosen=chosen)
        except SQLAlchemyError as exc:
            log.warning("metrics: cannot read the results database: %s", str(exc).splitlines()[0][:200])
            return None
        tiles = GaugeMetricFamily("tileclass_job_tiles", "Tiles of a job by state (they add up to its total)",
                                  labels=["job", "state"])
        info = GaugeMetricFamily("tileclass_job_info", "A job's state, kind, model and source (value 1)",
                                 labels=["job", "kind", "state", "model", "source"])
        rate = GaugeMetricFamily("tileclass_job_tiles_per_second", "Tiles a job finished per second, last minute",
                                 labels=["job"])
        for job, current in zip(chosen, progress, strict=True):
            key = str(job.id)
            for state, count in (("classified", current.classified), ("failed", current.failed),
                                 ("empty", current.empty), ("pending", current.pending)):
                tiles.add_metric([key, state], float(count))
            info.add_metric([key, str(job.kind), str(job.state), (job.model_hash or "")[:12],
                             str(job.source.get("name") or "")], 1.0)
            rate.add_metric([key], current.tiles_per_second)
        total = GaugeMetricFamily("tileclass_tiles_per_second", "Tiles all jobs finished per second, last minute",
                                  value=sum(current.tiles_per_second for current in progress))
        return [tiles, info, rate, total]


def fleet_registry(settings: Settings | None = None) -> CollectorRegistry:
    """A registry holding only the fleet collector (``settings``: the deployment's, default ``get_settings()``)."""
    registry = CollectorRegistry()
    registry.register(FleetCollector(settings))
    return registry
