"""One classify batch from message to database: look up the job and model, classify, record everything at once.

Steps, each database step one transaction retried on transient errors:

1. Read the job (its tile root's recorded path, whether it was cancelled) and find the model's checkpoint.
   A batch of an unknown or cancelled job is dropped.
2. Count the run in Redis (``worker.deliveries``): after a run whose worker process died, classify one tile at a
   time and fail a tile that kills the process again, so a poison tile cannot be redelivered forever.
3. Load the model through the process's cache. A model that is not registered, has no checkpoint on this host,
   or whose file does not match its hash fails the whole batch with that reason; the message is still
   acknowledged, so a bad model never makes workers crash-loop.
4. Resolve every tile path inside its root (a path that would leave it fails alone) and run the pipeline.
5. Record results, failures and the batch's counts in one transaction (upserts: a redelivered batch rewrites
   the same rows), then, in a second transaction, refresh the job's state. Refreshing after the commit
   means the last batch to commit always sees every other batch, so a job cannot miss its completion.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from core import jobs
from core.db import session_scope
from core.errors import NotFoundError, TileRootError
from core.queue import ClassifyBatch
from core.registry import checkpoint_for
from core.results import Failure, TileKey, record_failures, record_results
from core.roots import resolve_root, safe_join
from core.schema import Job, JobState, Model
from core.settings import Settings, get_settings
from worker import deliveries, runtime
from worker.pipeline import BatchOutcome, TileSource, classify_tiles

POISON_REASON = "the worker process died while classifying this tile on its own (after its batch had killed one)"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchContext:
    """What the database says about a batch before it runs."""

    job_found: bool
    cancelled: bool = False
    root_path: str | None = None
    model_registered: bool = False
    checkpoint: Path | None = None
    problem: str | None = None  # why the model cannot be loaded here, if it cannot

    def checkpoint_or_raise(self) -> Path:
        if self.checkpoint is None:
            raise runtime.ModelUnavailable(self.problem or "no checkpoint")
        return self.checkpoint


def tile_keys(batch: ClassifyBatch) -> list[TileKey]:
    return [TileKey(batch.root, path, z, x, y) for z, x, y, path in batch.tiles]


def run_batch(batch: ClassifyBatch, settings: Settings) -> dict[str, int | str]:
    """Classify one batch and record it; returns a summary for the log."""
    started = time.perf_counter()
    context = runtime.with_db_retry(lambda: _lookup(batch, settings), what=f"job {batch.job_id} batch {batch.seq}")
    if not context.job_found:
        log.error("dropping batch %d of job %d: no such job in the database", batch.seq, batch.job_id)
        return {"dropped": "unknown job"}
    if context.cancelled:
        log.info("dropping batch %d of job %d: the job was cancelled", batch.seq, batch.job_id)
        return {"dropped": "cancelled"}
    # A run whose worker process dies leaves its markers behind; the next run then isolates the tile that kills.
    markers = deliveries.RunMarkers(settings, job_id=batch.job_id, seq=batch.seq)
    mode = markers.begin()
    try:
        outcome = _classify(batch, settings, context, mode, markers)
        record_outcome(batch, outcome, model_registered=context.model_registered)
    except BaseException:
        markers.ended()  # this run failed but its process lives: not a death (poison tiles found so far stay known)
        raise
    markers.settled()
    elapsed = time.perf_counter() - started
    log.info("job %d batch %d: %d classified, %d failed in %.2f s (%.1f tiles/s)", batch.job_id, batch.seq,
             len(outcome.classified), len(outcome.failures), elapsed, len(batch.tiles) / max(elapsed, 1e-9))
    return {"classified": len(outcome.classified), "failed": len(outcome.failures)}


def _classify(batch: ClassifyBatch, settings: Settings, context: BatchContext, mode: deliveries.RunMode,
              markers: deliveries.RunMarkers) -> BatchOutcome:
    """Load the model and classify the batch's tiles: all at once, or one at a time after a run that died."""
    if mode.give_up is not None:
        reason = f"the worker process died {mode.give_up} times running this batch before reaching a tile"
        log.error("job %d batch %d: giving up, %s", batch.job_id, batch.seq, reason)
        return BatchOutcome(failures=[Failure(key, reason) for key in tile_keys(batch)])
    state = runtime.current(settings)
    try:
        if not context.model_registered:
            raise runtime.ModelUnavailable(f"model {batch.model_hash[:12]} is not registered in the results database")
        classifier = state.models.get(batch.model_hash, context.checkpoint_or_raise)
    except runtime.ModelUnavailable as exc:
        log.error("batch %d of job %d: %s", batch.seq, batch.job_id, exc)
        return BatchOutcome(failures=[Failure(key, str(exc)) for key in tile_keys(batch)])
    sources = resolve_sources(batch, settings, context.root_path)
    if not mode.isolate:
        return classify_tiles(classifier, sources, chunk_size=settings.worker_batch_size, pool=state.pool)
    outcome = BatchOutcome()
    for source in sources:
        if source.path is not None and source.key.path in mode.poison:
            log.error("job %d batch %d: %s killed a worker process while classified alone: failed", batch.job_id,
                      batch.seq, source.key.path)
            outcome.failures.append(Failure(source.key, POISON_REASON))
            continue
        if source.path is not None:
            markers.classifying(source.key.path)
        alone = classify_tiles(classifier, [source], chunk_size=1, pool=state.pool)
        markers.classified()
        outcome.classified.extend(alone.classified)
        outcome.failures.extend(alone.failures)
    return outcome


def fail_batch(batch: ClassifyBatch, reason: str) -> None:
    """Record every tile of ``batch`` as failed with ``reason`` (a batch that kept failing), and count it done."""
    registered = runtime.with_db_retry(lambda: _model_registered(batch.model_hash), what="model lookup")
    outcome = BatchOutcome(failures=[Failure(key, reason) for key in tile_keys(batch)])
    record_outcome(batch, outcome, model_registered=registered)
    deliveries.RunMarkers(get_settings(), job_id=batch.job_id, seq=batch.seq).settled()


def resolve_sources(batch: ClassifyBatch, settings: Settings, recorded_root: str | None) -> list[TileSource]:
    """Each tile's file inside the batch's root; a path that would leave the root is refused with the reason."""
    keys = tile_keys(batch)
    try:
        root = resolve_root(batch.root, settings, recorded_path=recorded_root)
    except TileRootError as exc:
        return [TileSource(key, None, str(exc)) for key in keys]
    sources = []
    for key in keys:
        try:
            sources.append(TileSource(key, safe_join(root, key.path)))
        except TileRootError as exc:
            sources.append(TileSource(key, None, str(exc)))
    return sources


def record_outcome(batch: ClassifyBatch, outcome: BatchOutcome, *, model_registered: bool) -> None:
    """Write a batch's results, failures and counts in one transaction, then refresh its job's state."""

    def write() -> None:
        with session_scope() as session:
            record_results(session, model_hash=batch.model_hash, job_id=batch.job_id, results=outcome.classified)
            if model_registered:
                record_failures(session, model_hash=batch.model_hash, job_id=batch.job_id, failures=outcome.failures)
            else:
                # failed_tiles rows reference the model; for a hash nobody registered only the counts are kept.
                log.error("model %s is not registered: %d failed tile(s) of job %d counted but not listed",
                          batch.model_hash[:12], len(outcome.failures), batch.job_id)
            jobs.record_batch_done(session, job_id=batch.job_id, seq=batch.seq, tiles=len(batch.tiles),
                                   classified=len(outcome.classified), failed=len(outcome.failures))

    def refresh() -> None:
        with session_scope() as session:
            jobs.refresh_state(session, job_id=batch.job_id)

    what = f"job {batch.job_id} batch {batch.seq}"
    runtime.with_db_retry(write, what=what)
    runtime.with_db_retry(refresh, what=what)


def _lookup(batch: ClassifyBatch, settings: Settings) -> BatchContext:
    with session_scope() as session:
        job = session.get(Job, batch.job_id)
        if job is None:
            return BatchContext(job_found=False)
        checkpoint, problem = None, None
        try:
            checkpoint = checkpoint_for(session, model_hash=batch.model_hash, settings=settings)
        except NotFoundError as exc:
            problem = str(exc)  # matters only if this process has not loaded the model already
        return BatchContext(job_found=True, cancelled=job.state == JobState.CANCELLED, root_path=job.root_path,
                            model_registered=_is_registered(session, batch.model_hash), checkpoint=checkpoint,
                            problem=problem)


def _is_registered(session: Session, model_hash: str) -> bool:
    return session.get(Model, model_hash) is not None


def _model_registered(model_hash: str) -> bool:
    with session_scope() as session:
        return _is_registered(session, model_hash)
