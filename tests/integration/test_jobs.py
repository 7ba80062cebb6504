"""Job progress is summed from batch rows, so redelivered batches and overlapping jobs count correctly."""

from __future__ import annotations

import pytest

from core import job_passes, jobs
from core.db import session_scope
from core.schema import JobState
from tests.factories import folder_source

pytestmark = pytest.mark.integration


def test_redelivered_batches_count_once_and_the_job_completes(database_url: str) -> None:
    with session_scope(database_url) as session:
        job_id = jobs.create_job(session, source=folder_source("/r", name="r")).id
        for seq in range(3):
            jobs.record_batches_enqueued(session, job_id=job_id, batches=[(seq, 10)])
        assert job_passes.next_batch_seq(session, job_id=job_id) == 3
    with session_scope(database_url) as session:
        for seq in (0, 1, 1):  # batch 1 delivered twice
            jobs.record_batch_done(session, job_id=job_id, seq=seq, tiles=10, classified=9, failed=1)
        jobs.finish_enqueue(session, job_id=job_id, total_tiles=30, total_batches=3, skipped=4)
    with session_scope(database_url) as session:
        current = jobs.progress(session, job_id=job_id)
        assert (current.classified, current.failed, current.pending) == (18, 2, 10)
        assert current.batches_done == 2 and current.state == JobState.QUEUED
        assert current.tiles_per_second == pytest.approx(20 / 60)
        jobs.record_batch_done(session, job_id=job_id, seq=2, tiles=10, classified=10, failed=0)
        assert jobs.refresh_state(session, job_id=job_id) == JobState.COMPLETED


def test_overlapping_jobs_keep_their_own_counts(database_url: str) -> None:
    with session_scope(database_url) as session:
        first, second = jobs.create_job(session).id, jobs.create_job(session).id
        for job_id in (first, second):
            jobs.record_batch_done(session, job_id=job_id, seq=0, tiles=5, classified=5, failed=0)
    with session_scope(database_url) as session:
        assert jobs.progress(session, job_id=first).classified == 5
        assert jobs.progress(session, job_id=second).classified == 5


def test_unknown_job_is_a_clear_error(database_url: str) -> None:
    with session_scope(database_url) as session, pytest.raises(Exception, match=r"job 99 does not exist"):
        jobs.get_job(session, 99)


def test_superseded_batch_numbers_never_count_even_when_their_batch_arrives(database_url: str) -> None:
    with session_scope(database_url) as session:
        job_id = jobs.create_job(session).id
        jobs.record_batches_enqueued(session, job_id=job_id, batches=[(0, 10)])
        # Batch 1 reached the broker unrecorded and a worker finished it before the producer's rerun ...
        jobs.record_batch_done(session, job_id=job_id, seq=1, tiles=10, classified=10, failed=0)
        # ... the rerun supersedes numbers 1..3 (published again as new batches); batch 2 arrives only later.
        job_passes.supersede_batches(session, job_id=job_id, seqs=range(1, 4))
        jobs.record_batch_done(session, job_id=job_id, seq=2, tiles=10, classified=10, failed=0)
        jobs.record_batch_done(session, job_id=job_id, seq=0, tiles=10, classified=10, failed=0)
        assert job_passes.batch_totals(session, job_id=job_id) == (10, 1)
        assert jobs.progress(session, job_id=job_id).classified == 10
