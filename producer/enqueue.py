"""Enqueue a region of a tile source as classify batches, creating a job or continuing the unfinished one.

Running the same request again (same model, source, region and bounds: ``--min-coverage``, ``--uncertain-below``,
as settled, defaults included) continues the newest job for it that is still ``enqueuing`` (or reports that a
``queued`` one is already fully enqueued) instead of starting another; other bounds make a new job, and ``force``
always starts a new job and classifies tiles again. A continued walk starts after the job's resume position, so
batches still waiting in the broker are not published twice; only the directory that was being walked is read
again, and its tiles that are still unclassified may be published a second time. That costs time, never a
duplicate row: results are upserts. The job's totals are summed from its batch rows when the walk ends, so they
always match what the workers report. The pass itself is ``producer.pipeline`` + ``producer.publication``, whose
driver handles a stop, Ctrl-C and an unreachable broker (``Interrupted``, ``BrokerUnavailable``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from celery import Celery

from core import jobs
from core.db import session_scope
from core.job_states import JobInfo, JobKind, JobState
from producer.pipeline import PassStats, Target, TileFilter, in_batches, walk_and_filter
from producer.publication import Publication


@dataclass(frozen=True)
class EnqueueRequest:
    """What to enqueue, whether to classify tiles again that already have a result (a new job), and the job's
    bounds (recorded in its row, where its workers read them)."""

    target: Target
    force: bool = False
    bounds: jobs.JobBounds = field(default_factory=jobs.JobBounds)


@dataclass
class EnqueueResult:
    job_id: int | None  # None when nothing was enqueued and no job existed
    resumed: bool
    state: str | None
    stats: PassStats


def find_resumable(request: EnqueueRequest) -> JobInfo | None:
    """The newest unfinished job for exactly this request (never with ``force``)."""
    if request.force:
        return None
    target = request.target
    with session_scope() as session:
        return jobs.find_unfinished(session, model_hash=target.model_hash, source=target.source.to_record(),
                                    region=target.region_record(), bounds=request.bounds)


def enqueue(request: EnqueueRequest, *, app: Celery, max_queued: int,
            on_progress: Callable[[PassStats], None] | None = None, stop: threading.Event | None = None,
            poll_interval: float | None = None) -> EnqueueResult:
    """Walk, publish and record; raises ``Interrupted`` (after recording) on KeyboardInterrupt or ``stop``, and
    ``BrokerUnavailable`` (after recording) when the broker cannot be reached."""
    target, stats = request.target, PassStats()
    resumable = find_resumable(request)
    if resumable is not None and resumable.state != JobState.ENQUEUING:
        return EnqueueResult(resumable.id, True, resumable.state, stats)
    publication = Publication(target, resumable, stats, create_job=lambda: _create_job(target, request.bounds))
    tiles = walk_and_filter(target, TileFilter(target, skip_classified=not request.force), stats,
                            after=publication.after, on_progress=on_progress, stop=stop)
    publication.run(in_batches(tiles, target.batch_size), app=app, max_queued=max_queued, stop=stop,
                    on_progress=on_progress, poll_interval=poll_interval)
    state = publication.finish()
    return EnqueueResult(publication.job_id, resumable is not None, state, stats)


def _create_job(target: Target, bounds: jobs.JobBounds) -> int:
    with session_scope() as session:
        return jobs.create_job(session, kind=JobKind.CLASSIFY, model_hash=target.model_hash,
                               source=target.source.to_record(), region=target.region_record(), bounds=bounds).id
