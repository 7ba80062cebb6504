"""The second half of every publishing pass: reserve → publish → record, for one job.

Reserve. Batch numbers are reserved in blocks of ``SEQ_BLOCK`` in the job row (``seq_reserved``) before any of
them reaches the broker. Every number below ``seq_recorded`` has its ``job_batches`` row; numbers from there to
the reservation may have reached the broker unrecorded (the producer was killed in between). The next pass over
the job supersedes them, because it publishes their tiles again, so those tiles count once.

Publish. Batches go out through ``producer.publish.Publisher``, which keeps the broker's queue bounded.

Record. Published batches, the resume position (``resume_after``: the last directory whose tiles are all
published), the reservation and the running totals are written in one transaction (``core.jobs.record_progress``)
at most every ``RECORD_INTERVAL`` seconds, before waiting for room in the broker, at the end and on
interruption. A worker may finish a batch before its row is written: the write keeps a row it finds done.

Retries (``tileclass retry``, ``retries=True``): each batch's row is written with its ``retried`` count before the
batch reaches the broker, so no worker can finish a retried tile before the job stops counting it as failed
(``core.jobs``). A batch whose publishing then fails stays recorded without a message: the next retry of the job
supersedes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from core import jobs
from core.db import session_scope
from core.messages import ClassifyBatch
from core.schema import Job
from core.tiles import Tile
from core.walk import Key
from producer.pipeline import DirectoryDone, PassStats, Target
from producer.publish import Publisher

RECORD_INTERVAL = 0.5
SEQ_BLOCK = 256


class Publication:
    """One pass's publishing and bookkeeping for one job.

    Args:
        job: the job, or None to have ``create_job`` make it on the first batch, once the broker has answered.
        adds_skipped: whether the pass's already-classified tiles add to the job's ``skipped_tiles`` (an enqueue)
            or were mostly classified by the job itself (a resume).
        retries: every tile published retries a failure the job counted (``tileclass retry``).
    """

    def __init__(self, target: Target, job: Job | None, stats: PassStats, *,
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
                self.next_seq = max(jobs.next_batch_seq(session, job_id=job.id), job.seq_reserved)
                jobs.supersede_batches(session, job_id=job.id, seqs=range(job.seq_recorded, job.seq_reserved))
        self.reserved = self.next_seq  # numbers below this are recorded in the job as possibly in use
        self.unrecorded: list[tuple[int, int]] = []  # (seq, tiles) published since the last record()
        self.finished_dirs: list[DirectoryDone] = []
        self.recorded_at = time.monotonic()

    def run(self, steps: Iterable[list[Tile] | DirectoryDone], publisher: Publisher) -> None:
        """Publish every batch of ``steps``, moving the resume position as directories are finished."""
        for step in steps:
            if isinstance(step, DirectoryDone):
                if self.finished_dirs and self.finished_dirs[-1].kept == step.kept:
                    self.finished_dirs[-1] = step
                else:
                    self.finished_dirs.append(step)
            else:
                self._send(publisher, step)
            self._advance_cursor()

    def _advance_cursor(self) -> None:
        while self.finished_dirs and self.finished_dirs[0].kept <= self.stats.enqueued:
            self.cursor = self.finished_dirs.pop(0).key

    def _send(self, publisher: Publisher, tiles: list[Tile]) -> None:
        if self.job_id is None:
            assert self.create_job is not None
            publisher.check()  # an unreachable broker fails here, before a job row exists
            self.job_id = self.create_job()
        if self.next_seq >= self.reserved:
            self.reserved = self.next_seq + SEQ_BLOCK
            self.record()  # writes the reservation before any of its numbers reaches the broker
        batch = ClassifyBatch(self.job_id, self.next_seq, self.target.model_hash, self.target.source.name, tiles)
        if self.retries:  # the row, with its retried count, before any worker can finish the batch
            self.unrecorded.append((self.next_seq, len(tiles)))
            self.next_seq += 1
            self.record()
            publisher.send(batch)
        else:
            publisher.send(batch)
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
            jobs.record_progress(session, job_id=self.job_id, batches=self.unrecorded, resume_after=self.cursor,
                                 seq_reserved=self.reserved, seq_recorded=self.next_seq,
                                 skipped=self._skipped(), retries=self.retries)
        self.unrecorded = []

    def _skipped(self) -> int:
        return self.base_skipped + (self.stats.skipped if self.adds_skipped else 0)

    def finish(self, *, message: str | None = None) -> str | None:
        """Record the rest and hand the job over to completion tracking; returns its state (None: no job)."""
        self.record()
        if self.job_id is None:
            return None
        with session_scope() as session:
            tiles, batches = jobs.batch_totals(session, job_id=self.job_id)
            job = jobs.get_job(session, self.job_id)
            if message is not None:
                job.message = message
            jobs.finish_enqueue(session, job_id=self.job_id, total_tiles=tiles, total_batches=batches,
                                skipped=self._skipped())
            return jobs.get_job(session, self.job_id).state


def _key_from_json(value: object) -> Key | None:
    """A resume position as JSON stored it (lists) back as the walk's tuples."""
    if not isinstance(value, list):
        return None
    return tuple(tuple(part) if isinstance(part, list) else part for part in value)
