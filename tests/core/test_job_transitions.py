"""A classify job's state machine (core.jobs.TRANSITIONS, drawn in docs/ARCHITECTURE.md) on SQLite and PostgreSQL:
its phase is a column, each move goes where the diagram says, and every other move raises and changes nothing."""

from __future__ import annotations

import pytest

from core import jobs
from core.db import session_scope
from core.job_states import JobKind, JobPhase, JobState
from core.jobs import IllegalTransition, Move
from tests.factories import folder_source

pytestmark = pytest.mark.integration

ENQUEUING, QUEUED, RUNNING = JobState.ENQUEUING, JobState.QUEUED, JobState.RUNNING
COMPLETED, CANCELLED, FAILED = JobState.COMPLETED, JobState.CANCELLED, JobState.FAILED

# The diagram, written out: (state, phase) --move--> (state, phase). Nothing else is allowed.
ALLOWED = {
    **{((ENQUEUING, phase), Move.PUBLISH): (QUEUED, None) for phase in (*JobPhase, None)},
    ((QUEUED, None), Move.COMPLETE): (COMPLETED, None),
    ((QUEUED, None), Move.RESUME): (ENQUEUING, JobPhase.RESUME),
    ((COMPLETED, None), Move.RESUME): (ENQUEUING, JobPhase.RESUME),
    ((ENQUEUING, JobPhase.RESUME), Move.RESUME): (ENQUEUING, JobPhase.RESUME),
    ((QUEUED, None), Move.RETRY): (ENQUEUING, JobPhase.RETRY),
    ((COMPLETED, None), Move.RETRY): (ENQUEUING, JobPhase.RETRY),
    ((ENQUEUING, JobPhase.RETRY), Move.RETRY): (ENQUEUING, JobPhase.RETRY),
    **{((ENQUEUING, phase), Move.CANCEL): (CANCELLED, None) for phase in (*JobPhase, None)},
    ((QUEUED, None), Move.CANCEL): (CANCELLED, None),
    ((RUNNING, None), Move.CANCEL): (CANCELLED, None),
}
STAGES = [(ENQUEUING, phase) for phase in (*JobPhase, None)] + [(state, None) for state in
                                                                  (QUEUED, RUNNING, COMPLETED, CANCELLED, FAILED)]


def stage_of(job_id: int) -> tuple[str, str | None]:
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        return job.state, job.phase


@pytest.fixture
def job(database_url: str, monkeypatch: pytest.MonkeyPatch) -> int:
    from core.settings import get_settings

    monkeypatch.setenv("TILECLASS_DATABASE_URL", database_url)
    get_settings.cache_clear()
    with session_scope() as session:
        return jobs.create_job(session, source=folder_source("/r", name="r")).id


def put(job_id: int, stage: tuple[JobState, JobPhase | None]) -> None:
    with session_scope() as session:
        row = jobs.job_row(session, job_id)
        row.state, row.phase = stage


def test_every_move_goes_where_the_diagram_says_and_no_other_move_is_made(job: int) -> None:
    for stage in STAGES:
        for move in Move:
            put(job, stage)
            expected = ALLOWED.get((stage, move))
            with session_scope() as session:
                row = jobs.job_row(session, job)
                if expected is None:
                    with pytest.raises(IllegalTransition, match=rf"^job {job} is {stage[0]}.*: it cannot "):
                        jobs.move(row, move)
                else:
                    jobs.move(row, move)
            assert stage_of(job) == (expected or stage), (stage, move)


def test_a_job_is_enqueued_published_resumed_and_retried_through_its_phase(job: int) -> None:
    assert stage_of(job) == (ENQUEUING, JobPhase.ENQUEUE)
    with session_scope() as session:
        training = jobs.create_job(session, kind=JobKind.TRAIN).id
        jobs.finish_enqueue(session, job_id=job, total_tiles=1, total_batches=1, skipped=0)
    assert stage_of(training) == (ENQUEUING, None) and stage_of(job) == (QUEUED, None)
    with session_scope() as session:
        claimed = jobs.begin_pass(session, job_id=job, phase=JobPhase.RESUME, message="resume in progress")
    assert (claimed.state, claimed.phase, claimed.message) == (ENQUEUING, JobPhase.RESUME, "resume in progress")
    with session_scope() as session, pytest.raises(IllegalTransition, match=r"phase resume.*cannot be retried"):
        jobs.begin_pass(session, job_id=job, phase=JobPhase.RETRY, message="retry in progress")
    with session_scope() as session:  # a stopped resume is continued by a resume
        jobs.begin_pass(session, job_id=job, phase=JobPhase.RESUME, message="resume in progress")
        jobs.finish_enqueue(session, job_id=job, total_tiles=1, total_batches=1, skipped=0, message="resumed")
    assert stage_of(job) == (QUEUED, None)


def test_cancel_refuses_a_finished_job_and_changes_none_of_those_asked(job: int) -> None:
    with session_scope() as session:
        finished = jobs.create_job(session, source=folder_source("/r", name="r")).id
        jobs.job_row(session, finished).state = COMPLETED
    with session_scope() as session, pytest.raises(IllegalTransition, match=rf"^job {finished} is completed: only "):
        jobs.cancel(session, job_ids=[job, finished])
    assert stage_of(job) == (ENQUEUING, JobPhase.ENQUEUE)
    with session_scope() as session:
        before = jobs.cancel(session, job_ids=[job, job])
    assert [(b.id, b.state) for b in before] == [(job, ENQUEUING)] and stage_of(job) == (CANCELLED, None)
    with session_scope() as session, pytest.raises(IllegalTransition, match="is cancelled: it cannot be resumed"):
        jobs.begin_pass(session, job_id=job, phase=JobPhase.RESUME, message="resume in progress")
