"""One classify batch from message to database: look up the job and model, classify, record everything at once.

Steps, each database step one transaction retried on transient errors:

1. Read the job (its tile source, whether it was cancelled, its bounds: ``min_coverage`` and ``uncertain_below``,
   as its enqueue settled them, so that resume and retry keep them) and find the model's checkpoint.
   A batch of an unknown or cancelled job is dropped, and so is one its job never handed out; tiles outside the
   job's region and repeats are left out (``worker.admission``).
2. Count the run in Redis (``worker.deliveries``): after a run whose worker process died, classify one tile at a
   time and fail a tile that kills the process again, so a poison tile cannot be redelivered forever.
3. Load the model through the process's cache. A model that is not registered, or whose checkpoint is unsafe or
   inconsistent, fails the whole batch with that reason (no worker could run it); the message is still
   acknowledged, so a bad model never makes workers crash-loop. A registered model with no usable checkpoint on
   this host (missing, or not matching its hash) is a ``HostError`` (see 6).
4. Open the job's source on this host (``source.reader``) and run the pipeline, which reads every tile through it
   (a path that would leave a folder fails alone).
6. A ``core.errors.HostError`` anywhere (the source not mounted here, no checkpoint here, the device out of memory)
   fails no tile: ``worker.tasks`` hands it to ``worker.host_errors``, which puts the batch back.
5. Record results, failures and the batch's counts (``worker.recording``: upserts, so a redelivered batch
   rewrites the same rows).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core.db import session_scope
from core.errors import HostError, NotFoundError
from core.jobs import JobBounds
from core.messages import ClassifyBatch
from core.models.lookups import is_registered
from core.models.registry import checkpoint_for
from core.results import Failure
from core.schema import Job, JobKind, JobState
from core.settings import Settings, get_settings
from core.sources import source_from_record
from core.sources.base import SourceError, SourceUnavailable
from worker import deliveries, metrics, runtime
from worker.admission import admit as admission_of
from worker.device_decode import uses_device_decode
from worker.pipeline import TileFile, classify_tiles
from worker.recording import BatchOutcome, record_outcome

POISON_REASON = "the worker process died while classifying this tile on its own (after its batch had killed one)"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchContext:
    """What the database says about a batch before it runs."""

    job_found: bool
    cancelled: bool = False
    source: dict[str, Any] = field(default_factory=dict)  # the job's source record
    model_registered: bool = False
    checkpoint: Path | None = None
    problem: str | None = None  # why the model cannot be loaded here, if it cannot
    model_dir_broken: bool = False  # the model folder exists but cannot be read: no model can be loaded here
    mismatch: str | None = None  # how the message contradicts its job's row (then it is dropped)
    admitted: ClassifyBatch | None = None  # what of the message to run (worker.admission)
    left_out: int = 0  # tiles of the message outside the job's region or repeated
    bounds: JobBounds = field(default_factory=JobBounds)  # the job's coverage and uncertainty bounds

    def min_coverage(self, settings: Settings) -> float:
        """The job's coverage bound; a job enqueued before jobs kept one takes ``TILECLASS_MIN_COVERAGE``."""
        return settings.min_coverage if self.bounds.min_coverage is None else self.bounds.min_coverage

    def checkpoint_or_raise(self) -> Path:
        if self.checkpoint is None:  # registered, but this host has no copy: the host's problem, not the tiles'
            raise HostError(self.problem or "no checkpoint on this host", broken=self.model_dir_broken)
        return self.checkpoint


def run_batch(batch: ClassifyBatch, settings: Settings) -> dict[str, int | str]:
    """Classify one batch and record it; returns a summary for the log."""
    started = time.perf_counter()
    context = runtime.with_db_retry(lambda: _lookup(batch, settings), what=f"job {batch.job_id} batch {batch.seq}")
    if not context.job_found:
        log.error("dropping batch %d of job %d: no such job in the database", batch.seq, batch.job_id)
        return {"dropped": "unknown job"}
    if context.mismatch is not None:  # a message that does not belong to its job: run nothing, fail nothing
        log.error("dropping batch %d of job %d: the message %s", batch.seq, batch.job_id, context.mismatch)
        return {"dropped": "does not match its job"}
    if context.cancelled:
        log.info("dropping batch %d of job %d: the job was cancelled", batch.seq, batch.job_id)
        return {"dropped": "cancelled"}
    batch = _admitted(batch, context)
    # A run whose worker process dies leaves its markers behind; the next run then isolates the tile that kills.
    markers = deliveries.RunMarkers(settings, job_id=batch.job_id, seq=batch.seq)
    mode = markers.begin()
    times = metrics.StageTimes()
    try:
        outcome = _classify(batch, settings, context, mode, markers, times)
        writing = time.perf_counter()
        record_outcome(batch, outcome, model_registered=context.model_registered,
                       uncertain_below=context.bounds.uncertain_below)
        times.add("write", time.perf_counter() - writing)
    except BaseException:
        markers.ended()  # this run failed but its process lives: not a death (poison tiles found so far stay known)
        raise
    markers.settled()
    metrics.batch_recorded(job_id=batch.job_id, model_hash=batch.model_hash, classified=len(outcome.classified),
                           failed=len(outcome.failures), empty=len(outcome.empty), times=times, started=started)
    elapsed = time.perf_counter() - started
    log.info("job %d batch %d: %d classified, %d failed, %d empty in %.2f s (%.1f tiles/s)", batch.job_id,
             batch.seq, len(outcome.classified), len(outcome.failures), len(outcome.empty), elapsed,
             len(batch.tiles) / max(elapsed, 1e-9))
    return {"classified": len(outcome.classified), "failed": len(outcome.failures), "empty": len(outcome.empty)}


def _classify(batch: ClassifyBatch, settings: Settings, context: BatchContext, mode: deliveries.RunMode,
              markers: deliveries.RunMarkers, times: metrics.StageTimes) -> BatchOutcome:
    """Load the model and classify the batch's tiles: all at once, or one at a time after a run that died."""
    if mode.give_up is not None:
        reason = f"the worker process died {mode.give_up} times running this batch before reaching a tile"
        log.error("job %d batch %d: giving up, %s", batch.job_id, batch.seq, reason)
        return BatchOutcome.all_failed(batch, reason)
    state = runtime.current(settings)
    try:
        if not context.model_registered:
            raise runtime.ModelUnavailable(f"model {batch.model_hash[:12]} is not registered in the results database")
        classifier = state.models.get(batch.model_hash, context.checkpoint_or_raise)
    except runtime.ModelUnavailable as exc:
        log.error("batch %d of job %d: %s", batch.seq, batch.job_id, exc)
        return BatchOutcome.all_failed(batch, str(exc))
    files = tile_files(batch, settings, context.source)
    device_decode = uses_device_decode(settings.worker.decode, classifier.device)
    if not mode.isolate:
        return classify_tiles(classifier, files, chunk_size=settings.worker.batch_size, pool=state.pool,
                              max_pixels=settings.worker.max_pixels, times=times, device_decode=device_decode,
                              min_coverage=context.min_coverage(settings))
    outcome = BatchOutcome()
    for tile_file in files:
        name = tile_file.tile.path or str(tile_file.tile)
        if tile_file.readable and name in mode.poison:
            log.error("job %d batch %d: %s killed a worker process while classified alone: failed", batch.job_id,
                      batch.seq, name)
            outcome.failures.append(Failure(tile_file.tile, POISON_REASON))
            continue
        if tile_file.readable:
            markers.classifying(name)
        alone = classify_tiles(classifier, [tile_file], chunk_size=1, pool=state.pool,
                               max_pixels=settings.worker.max_pixels, times=times, device_decode=device_decode,
                               min_coverage=context.min_coverage(settings))
        markers.classified()
        outcome.extend(alone)
    return outcome


def fail_batch(batch: ClassifyBatch, reason: str) -> None:
    """Record every tile of ``batch`` as failed with ``reason`` (a batch that kept failing), and count it done;
    only the tiles its job counts (``worker.admission``)."""
    context = runtime.with_db_retry(lambda: _admission(batch), what=f"job {batch.job_id} batch {batch.seq}")
    if context.admitted is None:
        log.error("not recording batch %d of job %d as failed: the message %s", batch.seq, batch.job_id,
                  context.mismatch or "names no job")
        return
    batch = _admitted(batch, context)
    record_outcome(batch, BatchOutcome.all_failed(batch, reason), model_registered=context.model_registered)
    deliveries.RunMarkers(get_settings(), job_id=batch.job_id, seq=batch.seq).settled()
    metrics.batch_recorded(job_id=batch.job_id, model_hash=batch.model_hash, classified=0, failed=len(batch.tiles),
                           empty=0)


def tile_files(batch: ClassifyBatch, settings: Settings, source_record: dict[str, Any]) -> list[TileFile]:
    """The batch's tiles, each read through the job's source on this host (``source.reader(settings)``: a tile
    whose path would leave its folder fails alone, with the reason).

    A source this host cannot read (unknown here, its folder missing or empty as an unmounted mount point, its
    archive missing or unreadable, a record this version does not know) is a ``HostError``: no tile fails for it.
    """
    try:
        reader = source_from_record(source_record).reader(settings)
    except SourceUnavailable:
        raise
    except SourceError as exc:  # the producer could read it; this host cannot: the host's problem
        raise SourceUnavailable(str(exc)) from None
    return [TileFile(tile, reader=reader) for tile in batch.tiles]


def _admitted(batch: ClassifyBatch, context: BatchContext) -> ClassifyBatch:
    """The part of ``batch`` to run and record, after logging what was left out of it."""
    assert context.admitted is not None
    if context.left_out:
        log.warning("job %d batch %d: left out %d of its %d tiles, outside the job's region or repeated", batch.job_id,
                    batch.seq, context.left_out, len(batch.tiles))
    return context.admitted


def _admission(batch: ClassifyBatch, session: Session | None = None) -> BatchContext:
    """Whether ``batch`` belongs to the job it names, and what of it to run (``job`` and ``mismatch`` only)."""
    if session is None:
        with session_scope() as own:
            return _admission(batch, own)
    job = session.get(Job, batch.job_id)
    if job is None:
        return BatchContext(job_found=False)
    mismatch = _mismatch(batch, job)
    admission = admission_of(session, batch, job) if mismatch is None else None
    if admission is None or admission.problem is not None:
        return BatchContext(job_found=True, mismatch=mismatch or (admission.problem if admission else None))
    return BatchContext(job_found=True, cancelled=job.state == JobState.CANCELLED, source=dict(job.source),
                        model_registered=is_registered(session, model_hash=batch.model_hash), admitted=admission.batch,
                        left_out=admission.left_out, bounds=JobBounds.of(job))


def _lookup(batch: ClassifyBatch, settings: Settings) -> BatchContext:
    with session_scope() as session:
        context = _admission(batch, session)
        if not context.job_found or context.mismatch is not None:
            return context
        checkpoint, problem = None, None
        try:
            checkpoint = checkpoint_for(session, model_hash=batch.model_hash, settings=settings)
        except NotFoundError as exc:
            problem = str(exc)  # matters only if this process has not loaded the model already
        return replace(context, checkpoint=checkpoint, problem=problem,
                       model_dir_broken=checkpoint is None and _unreadable(settings.model_dir))


def _mismatch(batch: ClassifyBatch, job: Job) -> str | None:
    """What in ``batch`` contradicts the job it names (its kind, model or source), if anything."""
    if job.kind != JobKind.CLASSIFY:
        return f"names a {job.kind} job"
    if batch.model_hash != job.model_hash:
        return f"names model {batch.model_hash[:12]}, the job {str(job.model_hash)[:12]}"
    if batch.source != job.source.get("name"):
        return f"names source {batch.source!r}, the job {job.source.get('name')!r}"
    return None


def _unreadable(folder: Path) -> bool:
    return folder.exists() and not os.access(folder, os.R_OK | os.X_OK)

