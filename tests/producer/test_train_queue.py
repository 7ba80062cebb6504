"""Training requests reach the broker one way (producer.train_queue.send_training), for a new run
(``train --queue``) and a lost one sent again (``resume JOB``): a broker that cannot be reached is one line, and the
job is marked failed with why instead of waiting for a message that never left."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from core import jobs
from core.db import session_scope
from core.job_states import JobKind, JobState
from core.schema import utcnow
from core.settings import get_settings
from core.sources import training_data
from tests.producer.conftest import Deployment, cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOWN = "redis://:secret@127.0.0.1:1/0"


def lost_training_job(data: Path) -> int:
    """A training job whose worker died mid-run: running, its lease expired."""
    with session_scope() as session:
        job_id = jobs.create_job(session, kind=JobKind.TRAIN, source=training_data(data, {"epochs": 3})).id
        row = jobs.job_row(session, job_id)
        row.state, row.lease_owner, row.lease_expires_at = JobState.RUNNING, "host:1", utcnow() - timedelta(hours=1)
    return job_id


def failed_with(job_id: int) -> tuple[str, str | None]:
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        return job.state, job.message


@pytest.mark.parametrize("how", ["train --queue", "resume a lost run"])
def test_a_training_request_the_broker_cannot_take_is_one_line_and_fails_its_job(
        how: str, embedded: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    (data / "Forest").mkdir(parents=True)
    job_id = lost_training_job(data) if how.startswith("resume") else 1
    monkeypatch.setenv("TILECLASS_BROKER_URL", DOWN)
    get_settings.cache_clear()
    result = cli("resume", job_id) if how.startswith("resume") else cli("train", data, "--queue")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: could not send training job {job_id} to the broker: ")
    assert "secret" not in result.output
    state, message = failed_with(job_id)
    assert state == JobState.FAILED and message is not None and message.startswith("could not queue: ")
