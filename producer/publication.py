"""The second half of every publishing pass: reserve → send → record, for one job, and the one driver of a pass.

``enqueue``, ``resume`` and ``retry`` all publish through ``Publication.run``, with the same stop and error
handling: Ctrl-C (or ``stop``) and an unreachable broker record what was published, then raise ``Interrupted`` or
``BrokerUnavailable``, so the same command continues the job. Their batches come from ``producer.pipeline``.

Reserve. Batch numbers are reserved in blocks of ``SEQ_BLOCK`` in the job row (``seq_reserved``) before any of
them reaches the broker. Every number below ``seq_recorded`` has its ``job_batches`` row; numbers from there to
the reservation may have reached the broker unrecorded (the producer was killed in between). The next pass over
the job supersedes them, because it publishes their tiles again, so those tiles count once.

Send. Batches go out over one reused broker connection through a ``BoundedSender``, which keeps at most
``max_queued`` of them waiting. Asking the broker for the queue's length costs a round trip (a new connection), so
it is not asked before every batch: the sender keeps an upper bound (the last count it read plus the batches it sent
since) and asks again only after ``max_queued // 2`` sends or when the bound reaches ``max_queued``. Workers only
ever shorten the queue, so the bound never underestimates and the queue never grows past ``max_queued``. When it is
full the sender polls every ``poll_interval`` seconds until a worker makes room.

Record. Published batches, the resume position (``resume_after``: the last directory whose tiles are all
published), the reservation and the running totals are written in one transaction (``core.job_passes``) at most
every ``RECORD_INTERVAL`` seconds, before waiting for room in the broker, at the end and on interruption. A worker
may finish a batch before its row is written: the write keeps a row it finds done.

Retries (``tileclass retry``, ``retries=True``): each batch's row is written with its ``retried`` count before the
batch reaches the broker, so no worker can finish a retried tile before the job stops counting it as failed
(``core.jobs``). A batch whose publishing then fails stays recorded without a message: the next retry of the job
supersedes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from celery import Celery
from kombu.exceptions import OperationalError
from kombu.utils.url import maybe_sanitize_url

from core import job_passes, jobs
from core.celery_app import queued_messages
from core.db import session_scope
from core.errors import TileclassError
from core.job_states import JobInfo
from core.messages import CLASSIFY_QUEUE, CLASSIFY_TASK, SENT_AT_HEADER, ClassifyBatch
from core.sources.base import Key
from core.tiles import Tile
from producer.pipeline import DirectoryDone, PassStats, Target

RECORD_INTERVAL = 0.5
SEQ_BLOCK = 256
POLL_INTERVAL = 0.25


class BrokerUnavailable(TileclassError):
    """The broker cannot be reached; what was published is recorded."""


class Interrupted(Exception):
    """The producer was interrupted; everything published so far is recorded and the job can be continued."""

    def __init__(self, job_id: int | None, stats: PassStats) -> None:
        super().__init__(f"interrupted (job {job_id})")
        self.job_id, self.stats = job_id, stats


class Sender(Protocol):
    """Where ``Publication.send_all`` sends batches: a ``BoundedSender`` (a test may look at them instead)."""

    def check(self) -> None: ...
    def send(self, batch: ClassifyBatch) -> None: ...


class BoundedSender:
    """Sends batches by task name; ``before_wait`` runs before it blocks (the producer records its progress)."""

    def __init__(self, app: Celery, producer: Any, *, max_queued: int, before_wait: Callable[[], None],
                 on_wait: Callable[[int], None] | None = None, stop: threading.Event | None = None,
                 poll_interval: float = POLL_INTERVAL) -> None:
        self.app, self.producer, self.max_queued = app, producer, max_queued
        self.before_wait, self.on_wait, self.stop, self.poll_interval = before_wait, on_wait, stop, poll_interval
        self.recheck_every = max(1, max_queued // 2)
        self._known: int | None = None  # the queue's length when last asked
        self._since = 0  # batches sent since then

    def check(self) -> None:
        """Ask the broker for the queue's length now (raises kombu's OperationalError when it is unreachable)."""
        if self._known is None:
            self._known = self._count()

    def send(self, batch: ClassifyBatch) -> None:
        self.check()
        assert self._known is not None
        if self._known + self._since >= self.max_queued:
            self._wait_for_room()
        # A short kwargsrepr: Celery would otherwise build a repr of every tile row for logs (a fifth of the time).
        summary = f"{{'batch': <job {batch.job_id} seq {batch.seq}: {len(batch.tiles)} tiles>}}"
        self.app.send_task(CLASSIFY_TASK, kwargs={"batch": batch.to_message()}, queue=CLASSIFY_QUEUE,
                           producer=self.producer, argsrepr="()", kwargsrepr=summary,
                           headers={SENT_AT_HEADER: round(time.time(), 3)})
        self._since += 1
        if self._since >= self.recheck_every:
            self._known, self._since = self._count(), 0

    def _count(self) -> int:
        return queued_messages(CLASSIFY_QUEUE, self.app)

    def _wait_for_room(self) -> None:
        self.before_wait()
        while True:
            count = self._count()
            if count < self.max_queued:
                self._known, self._since = count, 0
                return
            if self.on_wait is not None:
                self.on_wait(count)
            deadline = time.monotonic() + self.poll_interval
            while time.monotonic() < deadline:
                if self.stop is not None and self.stop.is_set():
                    raise KeyboardInterrupt
                time.sleep(min(0.05, self.poll_interval))


class Publication:
    """One pass's publishing and bookkeeping for one job.

    Args:
        job: the job, or None to have ``create_job`` make it on the first batch, once the broker has answered.
        adds_skipped: whether the pass's already-classified tiles add to the job's ``skipped_tiles`` (an enqueue)
            or were mostly classified by the job itself (a resume).
        retries: every tile published retries a failure the job counted (``tileclass retry``).
    """

    def __init__(self, target: Target, job: JobInfo | None, stats: PassStats, *,
                 create_job: Callable[[], int] | None = None, adds_skipped: bool = True,
                 retries: bool = False) -> None:
        self.target, self.stats, self.create_job, self.adds_skipped = target, stats, create_job, adds_skipped
        self.retries = retries
        self.job_id = job.id if job is not None else None
        self.base_skipped = job.skipped_tiles if job is not None else 0
        self.after: Key | None = _key_from_json(job.resume_after) if job is not None else None
        self.cursor = self.after
        self.next_seq = 0
        if job is not None:
            with session_scope() as session:
                self.next_seq = max(job_passes.next_batch_seq(session, job_id=job.id), job.seq_reserved)
                job_passes.supersede_batches(session, job_id=job.id, seqs=range(job.seq_recorded, job.seq_reserved))
        self.reserved = self.next_seq  # numbers below this are recorded in the job as possibly in use
        self.unrecorded: list[tuple[int, int]] = []  # (seq, tiles) published since the last record()
        self.finished_dirs: list[DirectoryDone] = []
        self.recorded_at = time.monotonic()

    def run(self, steps: Iterable[list[Tile] | DirectoryDone], *, app: Celery, max_queued: int,
            stop: threading.Event | None = None, on_progress: Callable[[PassStats], None] | None = None,
            poll_interval: float | None = None) -> None:
        """Publish every batch of ``steps`` over one broker connection, keeping at most ``max_queued`` waiting.

        Raises ``Interrupted`` on KeyboardInterrupt or once ``stop`` is set (checked between steps and while
        waiting for room), ``BrokerUnavailable`` when the broker cannot be reached; both after recording.
        """
        def waiting(_count: int) -> None:
            self.stats.waiting = True
            if on_progress is not None:
                on_progress(self.stats)

        try:
            with app.producer_or_acquire() as producer:
                sender = BoundedSender(app, producer, max_queued=max_queued, before_wait=self.record, stop=stop,
                                       on_wait=waiting, **({"poll_interval": poll_interval} if poll_interval else {}))
                self.send_all(steps, sender, stop=stop)
        except KeyboardInterrupt:
            self.record()
            raise Interrupted(self.job_id, self.stats) from None
        except OperationalError as exc:  # kombu's "broker unreachable", after Celery's publish retries
            self.record()
            hint = f"; job {self.job_id} is resumable" if self.job_id is not None else ""
            raise BrokerUnavailable(f"cannot reach the broker at {maybe_sanitize_url(app.conf.broker_url)}: {exc}"
                                    f"{hint}") from None

    def send_all(self, steps: Iterable[list[Tile] | DirectoryDone], sender: Sender, *,
                 stop: threading.Event | None = None) -> None:
        """Send every batch of ``steps``, moving the resume position as directories are finished (``run`` is this
        with a broker connection and the stop and error handling)."""
        for step in steps:
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            if isinstance(step, DirectoryDone):
                if self.finished_dirs and self.finished_dirs[-1].kept == step.kept:
                    self.finished_dirs[-1] = step
                else:
                    self.finished_dirs.append(step)
            else:
                self._send(sender, step)
            self._advance_cursor()

    def _advance_cursor(self) -> None:
        while self.finished_dirs and self.finished_dirs[0].kept <= self.stats.enqueued:
            self.cursor = self.finished_dirs.pop(0).key

    def _send(self, sender: Sender, tiles: list[Tile]) -> None:
        if self.job_id is None:
            assert self.create_job is not None
            sender.check()  # an unreachable broker fails here, before a job row exists
            self.job_id = self.create_job()
        if self.next_seq >= self.reserved:
            self.reserved = self.next_seq + SEQ_BLOCK
            self.record()  # writes the reservation before any of its numbers reaches the broker
        batch = ClassifyBatch(self.job_id, self.next_seq, self.target.model_hash, self.target.source.name, tiles)
        if self.retries:  # the row, with its retried count, before any worker can finish the batch
            self.unrecorded.append((self.next_seq, len(tiles)))
            self.next_seq += 1
            self.record()
            sender.send(batch)
        else:
            sender.send(batch)
            self.unrecorded.append((self.next_seq, len(tiles)))
            self.next_seq += 1
        self.stats.published(tiles)
        if time.monotonic() - self.recorded_at >= RECORD_INTERVAL:
            self.record()

    def record(self) -> None:
        """Write the published batches, the resume position, the reservation and running totals in one go."""
        self.recorded_at = time.monotonic()
        if self.job_id is None:
            return
        with session_scope() as session:
            job_passes.record_progress(session, job_id=self.job_id, batches=self.unrecorded,
                                       resume_after=self.cursor, seq_reserved=self.reserved,
                                       seq_recorded=self.next_seq, skipped=self._skipped(), retries=self.retries)
        self.unrecorded = []

    def _skipped(self) -> int:
        return self.base_skipped + (self.stats.skipped if self.adds_skipped else 0)

    def finish(self, *, message: str | None = None) -> str | None:
        """Record the rest and hand the job over to completion tracking; returns its state (None: no job)."""
        self.record()
        if self.job_id is None:
            return None
        with session_scope() as session:
            tiles, batches = job_passes.batch_totals(session, job_id=self.job_id)
            jobs.finish_enqueue(session, job_id=self.job_id, total_tiles=tiles, total_batches=batches,
                                skipped=self._skipped(), message=message)
            return jobs.get_job(session, self.job_id).state


def _key_from_json(value: object) -> Key | None:
    """A resume position as JSON stored it (lists) back as the walk's tuples."""
    if not isinstance(value, list):
        return None
    return tuple(tuple(part) if isinstance(part, list) else part for part in value)
