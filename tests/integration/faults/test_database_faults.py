"""PostgreSQL connections of the workers terminated while they write, again and again, in the middle of a job."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from core.schema import JobState
from tests.integration.faults.conftest import World
from tests.integration.faults.harness import batches_done, job_state, wait_complete, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Every other backend of this database that is inside a statement or a transaction: a worker writing.
TERMINATE_WRITERS = text("""
    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND state IN ('active', 'idle in transaction')
""")
TERMINATE_ALL = text("""
    SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
""")


def retried_writes(world: World) -> int:
    return sum(log.read_text(errors="replace").count("temporary database error")
               for log in world.deployment.folder.glob("worker*.log"))


def test_database_connections_terminated_mid_write_lose_nothing(world: World) -> None:
    retried_before = retried_writes(world)
    job = world.enqueue()
    wait_for(lambda: batches_done(job) >= 2, timeout=120, what="two batches", pool=world.pool, interval=0.05)
    admin = create_engine(world.deployment.database_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    writers = idle = 0
    deadline = time.monotonic() + 60
    with admin.connect() as conn:
        # Hit writers as often as possible until the workers had to retry a few writes (or the job ended).
        while time.monotonic() < deadline and job_state(job) != JobState.COMPLETED:
            writers += int(conn.execute(TERMINATE_WRITERS).scalar_one())
            if retried_writes(world) - retried_before >= 3:
                idle += int(conn.execute(TERMINATE_ALL).scalar_one())  # and every pooled connection, once
                break
            time.sleep(0.01)
    admin.dispose()
    wait_complete(job, world.pool)
    assert writers >= 1 and retried_writes(world) > retried_before  # writes were cut, and retried
    world.check([job])
