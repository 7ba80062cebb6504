"""The worker tests' world: settings for a CPU worker on a real database (SQLite and PostgreSQL), a registered tiny
checkpoint, and jobs made as the producer leaves them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core import jobs
from core.db import session_scope
from core.messages import ClassifyBatch
from core.models.registry import register_checkpoint
from core.schema import JobState
from core.settings import Settings, get_settings
from core.tiles import Tile
from tests.worker.support import tiny_checkpoint
from worker import runtime


@dataclass
class World:
    settings: Settings
    model_hash: str
    root: Path
    checkpoint: Path

    def job(self, rows: list[Tile], *, model_hash: str | None = None, root_path: str | None = None,
            state: JobState | None = None) -> ClassifyBatch:
        """A one-batch job over ``rows``, enqueued and finished, as the producer leaves it."""
        with session_scope() as session:
            source = {"kind": "folder", "name": "tiles", "path": root_path or str(self.root), "layout": "plain"}
            job_id = jobs.create_job(session, source=source, model_hash=self.model_hash).id
            jobs.record_batches_enqueued(session, job_id=job_id, batches=[(0, len(rows))])
            jobs.finish_enqueue(session, job_id=job_id, total_tiles=len(rows), total_batches=1, skipped=0)
            if state is not None:
                jobs.set_state(session, job_ids=[job_id], state=state)
        return ClassifyBatch(job_id, 0, model_hash or self.model_hash, "tiles", rows)


@pytest.fixture
def world(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for name, value in {"DATABASE_URL": database_url, "DEVICE": "cpu", "WORKER_COMPILE": "false",
                        "WORKER_THREADS": "1", "WORKER_BATCH_SIZE": "4", "MODEL_DIR": str(tmp_path / "models")}.items():
        monkeypatch.setenv(f"TILECLASS_{name}", value)
    get_settings.cache_clear()
    runtime.reset()
    settings = get_settings()
    checkpoint = tiny_checkpoint(tmp_path / "trained")
    with session_scope() as session:
        model_hash = register_checkpoint(session, checkpoint=checkpoint, settings=settings).hash
    yield World(settings, model_hash, tmp_path / "tiles", checkpoint)
    runtime.reset()
