"""``tileclass retry``'s bookkeeping on SQLite and PostgreSQL, with the real broker's messages taken by a stand-in
worker that records them through the worker's own recording: each retried tile counts once in the job's total,
pending while its batch waits, then as what it became; a retry waits for the job's batches; an interrupted retry
is run again without counting a tile twice; a batch a fast worker finishes is never counted before its row.
(The same with real worker processes: tests/integration/test_retry.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import jobs
from core.db import session_scope
from core.job_states import JobPhase
from core.messages import ClassifyBatch
from core.results import Classified, Failure
from core.schema import BatchState, JobBatch, JobState
from core.tiles import Tile
from producer.retry import RETRYING_NOTE
from tests.factories import CLASSES, folder_source
from tests.producer.conftest import Deployment, classify, cli, consume, deploy, tiles_in

pytestmark = pytest.mark.integration

TILES = [Tile(15, 100 + i, 200, f"15/{100 + i}/200.png") for i in range(6)]


@pytest.fixture
def world(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Deployment:
    return deploy(monkeypatch, database_url, "filesystem://")


def failed_job(world: Deployment, tmp_path: Path) -> int:
    """A completed job of two batches of three tiles: four classified, the last two failed."""
    from worker.recording import BatchOutcome, record_outcome

    with session_scope() as session:
        job = jobs.create_job(session, model_hash=world.model, source=folder_source(tmp_path, name="tiles")).id
        jobs.record_batches_enqueued(session, job_id=job, batches=[(0, 3), (1, 3)])
        record = jobs.job_row(session, job)
        record.seq_reserved = record.seq_recorded = 2
    for seq, tiles, failing in ((0, TILES[:3], 0), (1, TILES[3:], 2)):
        batch = ClassifyBatch(job, seq, world.model, "tiles", tiles)
        ok = [Classified(t, "Forest", 0.9, dict.fromkeys(CLASSES, 0.3)) for t in tiles[: len(tiles) - failing]]
        record_outcome(batch, BatchOutcome(ok, [Failure(t, "truncated file") for t in tiles[len(tiles) - failing:]]),
                       model_registered=True)
    with session_scope() as session:
        jobs.finish_enqueue(session, job_id=job, total_tiles=6, total_batches=2, skipped=0)
    return job


def counts(job: int) -> tuple[str, int, int, int, int]:
    with session_scope() as session:
        done = jobs.progress(session, job_id=job)
        return done.state, done.total, done.classified, done.failed, done.pending


def test_retried_tiles_count_once_pending_then_classified(world: Deployment, tmp_path: Path) -> None:
    job = failed_job(world, tmp_path)
    assert counts(job) == ("completed", 6, 4, 2, 0)
    retried = cli("retry", str(job), "--json")
    assert retried.exit_code == 0, retried.output
    assert json.loads(retried.stdout) | {"batch_size": 0} == {
        "job_id": job, "state": "queued", "reason": None, "enqueued": 2, "batches": 1, "failed": 2,
        "superseded_batches": 0, "batch_size": 0}
    assert counts(job) == ("queued", 6, 4, 0, 2)  # the two retried tiles wait: pending, no longer failed
    waiting = cli("retry", str(job))
    assert waiting.exit_code == 2 and "still has 1 batch not done" in waiting.output, waiting.output
    batches = consume(world.app())
    assert [row[3] for row in tiles_in(batches)] == [t.path for t in TILES[4:]] and batches[0]["seq"] == 2
    classify(batches)
    assert counts(job) == ("completed", 6, 6, 0, 0)
    assert json.loads(cli("failures", str(job), "--format", "json").stdout) == []


def test_an_interrupted_retry_is_run_again_without_counting_twice(world: Deployment, tmp_path: Path) -> None:
    job = failed_job(world, tmp_path)
    with session_scope() as session:  # a retry killed after recording (and maybe publishing) its batch
        jobs.record_batches_enqueued(session, job_id=job, batches=[(2, 2)], retries=True)
        record = jobs.job_row(session, job)
        record.state, record.phase, record.message, record.seq_reserved, record.seq_recorded = (
            JobState.ENQUEUING, JobPhase.RETRY, RETRYING_NOTE, 3, 3)
    assert counts(job)[1:] == (6, 4, 0, 2)
    resumed = cli("resume", str(job))
    assert resumed.exit_code == 2 and f"run 'tileclass retry {job}' again to finish it" in resumed.output
    again = cli("retry", str(job), "--json")
    assert again.exit_code == 0, again.output
    assert (json.loads(again.stdout)["superseded_batches"], json.loads(again.stdout)["enqueued"]) == (1, 2)
    assert counts(job) == ("queued", 6, 4, 0, 2)
    classify(consume(world.app()))
    assert counts(job) == ("completed", 6, 6, 0, 0)
    with session_scope() as session:
        states = {b.seq: (b.state, b.retried) for b in session.query(JobBatch).filter(JobBatch.job_id == job)}
    assert states[2] == (BatchState.CANCELLED, 2) and states[3] == (BatchState.DONE, 2)


def test_a_retry_batch_is_recorded_with_its_count_before_a_worker_can_finish_it(world: Deployment,
                                                                               tmp_path: Path) -> None:
    """A fast worker's row comes first and the producer's record keeps it: so the retried count is written
    before the message is sent, never after."""
    from producer.publication import Publication
    from producer.retry import plan_retry

    job = failed_job(world, tmp_path)
    seen: list[tuple[str, int]] = []

    class Recorder:  # stands in for the broker, to look at the database at the moment a batch is sent
        def send(self, batch: ClassifyBatch) -> None:
            with session_scope() as session:
                row = session.get_one(JobBatch, (job, batch.seq))
                seen.append((row.state, row.retried))
                jobs.record_batch_done(session, job_id=job, seq=batch.seq, tiles=2, classified=2, failed=0)

    with session_scope() as session:
        plan = plan_retry(session, job_id=job)
        record = jobs.get_job(session, job)
    from producer.pipeline import PassStats

    publication = Publication(plan.target, record, PassStats(), adds_skipped=False, retries=True)
    publication.send_all([TILES[4:]], Recorder())  # type: ignore[arg-type]
    publication.finish()
    assert seen == [(BatchState.QUEUED, 2)]
    assert counts(job) == ("completed", 6, 6, 0, 0)
