"""Recording one batch's outcome: results, failures and the batch's counts in one transaction, then the job.

This is the only way a batch reaches the database; it imports no torch, so the producer's tests record the
batches they consume through exactly this function.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from core import jobs
from core.db import session_scope
from core.messages import ClassifyBatch
from core.results import (
    Classified,
    Empty,
    Failure,
    is_uncertain,
    lock_tiles,
    record_empty,
    record_failures,
    record_results,
)
from worker.runtime import with_db_retry

log = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    """What became of a batch's tiles: every tile is in exactly one of the three lists."""

    classified: list[Classified] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    empty: list[Empty] = field(default_factory=list)

    def extend(self, other: BatchOutcome) -> None:
        self.classified.extend(other.classified)
        self.failures.extend(other.failures)
        self.empty.extend(other.empty)

    @classmethod
    def all_failed(cls, batch: ClassifyBatch, reason: str) -> BatchOutcome:
        return cls(failures=[Failure(tile, reason) for tile in batch.tiles])


def record_outcome(batch: ClassifyBatch, outcome: BatchOutcome, *, model_registered: bool,
                   uncertain_below: float | None = None) -> None:
    """Write a batch's results, failures and counts in one transaction, then refresh its job's state.

    ``uncertain_below`` is the job's: answers less confident than it are flagged and counted as uncertain.

    Refreshing after the commit means the last batch to commit always sees every other batch, so a job cannot
    miss its completion.
    """

    uncertain = sum(is_uncertain(result.confidence, uncertain_below) for result in outcome.classified)

    def write() -> None:
        with session_scope() as session:
            # Every tile of the batch at once, in one order: results and failures then take no new lock.
            lock_tiles(session, model_hash=batch.model_hash, source_name=batch.source, tiles=batch.tiles)
            record_results(session, model_hash=batch.model_hash, job_id=batch.job_id, source_name=batch.source,
                           results=outcome.classified, uncertain_below=uncertain_below)
            if model_registered:
                record_failures(session, model_hash=batch.model_hash, job_id=batch.job_id,
                                source_name=batch.source, failures=outcome.failures)
                record_empty(session, model_hash=batch.model_hash, job_id=batch.job_id, source_name=batch.source,
                             empty=outcome.empty)
            else:
                # failed_tiles rows reference the model; for a hash nobody registered only the counts are kept.
                log.error("model %s is not registered: %d failed tile(s) of job %d counted but not listed",
                          batch.model_hash[:12], len(outcome.failures), batch.job_id)
            jobs.record_batch_done(session, job_id=batch.job_id, seq=batch.seq, tiles=len(batch.tiles),
                                   classified=len(outcome.classified), failed=len(outcome.failures),
                                   empty=len(outcome.empty), uncertain=uncertain)

    def refresh() -> None:
        with session_scope() as session:
            jobs.refresh_state(session, job_id=batch.job_id)

    what = f"job {batch.job_id} batch {batch.seq}"
    with_db_retry(write, what=what)
    with_db_retry(refresh, what=what)
