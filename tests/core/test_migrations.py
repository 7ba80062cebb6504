"""The migration chain: one head, a schema that matches core.schema, and 0002 upgrading a 0001 database that holds
jobs, results and failures without losing them (and back), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from core.migrate import alembic_config, upgrade
from core.schema import Base
from tests.conftest import fresh_postgres_database

MODEL = "a" * 64
NOW = "2026-11-30 10:00:00"


def test_the_migrations_form_one_chain() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    assert [rev.revision for rev in script.walk_revisions()][-1] == "0001"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with fresh_postgres_database("tileclass_migration", migrate=False) as url:
        yield url


def test_the_migrated_schema_is_what_core_schema_declares(empty_database: str) -> None:
    upgrade(empty_database)
    engine = create_engine(empty_database)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert differences == []


def _seed_0001(url: str) -> None:
    """What a 0001 database of the first build holds: an enqueued classify job with its bookkeeping in ``region``,
    a training job, results with and without coordinates, and one tile failed under two roots."""
    upgrade(url, "0001")
    region = {"zooms": [17], "bbox": None, "geojson": None, "resume_after": [17, 5], "seq_reserved": 256,
              "seq_recorded": 3}
    statements = [
        ("INSERT INTO models (hash, arch, class_names, image_size, path, metrics, created_at) VALUES "
         "(:m, 'resnet18', :classes, 64, '/m.pt', '{}', :now)", {"classes": json.dumps(["Forest", "River"])}),
        ("INSERT INTO jobs (id, kind, state, model_hash, root_name, root_path, layout, region, total_tiles, "
         "total_batches, skipped_tiles, created_at, updated_at) VALUES (1, 'classify', 'queued', :m, 'ortho', "
         "'/mnt/ortho', 'xyz:{z}/{x}/{y}.{ext}', :region, 3, 3, 0, :now, :now)", {"region": json.dumps(region)}),
        ("INSERT INTO jobs (id, kind, state, root_path, region, total_tiles, total_batches, skipped_tiles, "
         "created_at, updated_at) VALUES (2, 'train', 'completed', '/data/eurosat', '{}', 0, 0, 0, :now, :now)", {}),
        ("INSERT INTO tile_results (model_hash, z, x, y, root_name, path, label, confidence, probabilities, job_id, "
         "classified_at) VALUES (:m, 17, 5, 6, 'ortho', '17/5/6.png', 'Forest', 0.9, '{}', 1, :now), "
         "(:m, NULL, NULL, NULL, 'ortho', 'scans/a.jpg', 'River', 0.8, '{}', 1, :now)", {}),
        ("INSERT INTO failed_tiles (model_hash, job_id, z, x, y, root_name, path, reason, attempts, failed_at) "
         "VALUES (:m, 1, 17, 5, 7, 'ortho', '17/5/7.png', 'truncated', 1, :now), "
         "(:m, 1, 17, 5, 7, 'copy', '17/5/7.png', 'still truncated', 2, :now)", {}),
    ]
    engine = create_engine(url)
    with engine.begin() as conn:
        for sql, values in statements:
            conn.execute(text(sql), {"m": MODEL, "now": NOW} | values)
    engine.dispose()


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(json.loads(v) if isinstance(v, str) and v[:1] in "{[" else v for v in row)
                for row in conn.execute(text(sql))]
    engine.dispose()
    return rows


def test_0002_upgrades_a_database_with_jobs_and_results_and_downgrades_it_again(empty_database: str) -> None:
    url = empty_database
    _seed_0001(url)
    upgrade(url)
    jobs = _rows(url, "SELECT id, source, region, resume_after, seq_reserved, seq_recorded FROM jobs ORDER BY id")
    assert jobs == [
        (1, {"kind": "folder", "name": "ortho", "path": "/mnt/ortho", "layout": "xyz:{z}/{x}/{y}.{ext}"},
         {"zooms": [17], "bbox": None, "geojson": None}, [17, 5], 256, 3),
        (2, {"kind": "imagefolder", "path": "/data/eurosat"}, {}, None, 0, 0),
    ]
    assert _rows(url, "SELECT path, label FROM tile_results ORDER BY path") == [
        ("17/5/6.png", "Forest"), ("scans/a.jpg", "River")]
    # The tile failed under two roots is one tile now (keyed by coordinates): the newest row stays.
    assert _rows(url, "SELECT root_name, reason, attempts FROM failed_tiles") == [("copy", "still truncated", 2)]

    command.downgrade(alembic_config(url), "0001")
    assert _rows(url, "SELECT id, root_name, root_path, layout, region FROM jobs ORDER BY id") == [
        (1, "ortho", "/mnt/ortho", "xyz:{z}/{x}/{y}.{ext}",
         {"zooms": [17], "bbox": None, "geojson": None, "resume_after": [17, 5], "seq_reserved": 256,
          "seq_recorded": 3}),
        (2, None, "/data/eurosat", None, {"resume_after": None, "seq_reserved": 0, "seq_recorded": 0}),
    ]
    assert len(_rows(url, "SELECT id FROM tile_results")) == 2


def _seed_0006(url: str) -> None:
    """A 0006 database: a classify job with one done batch, a result with coordinates and one without."""
    upgrade(url, "0006")
    statements = [
        "INSERT INTO models (hash, arch, class_names, image_size, path, metrics, created_at) VALUES "
        "(:m, 'resnet18', '[\"Forest\", \"River\"]', 64, '/m.pt', '{}', :now)",
        "INSERT INTO jobs (id, kind, state, model_hash, source, region, seq_reserved, seq_recorded, total_tiles, "
        "total_batches, skipped_tiles, created_at, updated_at) VALUES (1, 'classify', 'completed', :m, "
        "'{\"kind\": \"folder\", \"name\": \"ortho\"}', '{}', 1, 1, 2, 1, 0, :now, :now)",
        "INSERT INTO job_batches (job_id, seq, tiles, state, classified, failed, empty, retried, enqueued_at) "
        "VALUES (1, 0, 2, 'done', 2, 0, 0, 0, :now)",
        "INSERT INTO tile_results (model_hash, z, x, y, root_name, path, label, confidence, probabilities, job_id, "
        "classified_at) VALUES (:m, 17, 5, 6, 'ortho', '17/5/6.png', 'Forest', 0.4, '{}', 1, :now), "
        "(:m, NULL, NULL, NULL, 'ortho', 'scans/a.jpg', 'River', 0.8, '{}', 1, :now)",
    ]
    engine = create_engine(url)
    with engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql), {"m": MODEL, "now": NOW})
    engine.dispose()


def test_0007_keeps_results_and_jobs_with_unmeasured_coverage_nothing_uncertain_and_downgrades(
        empty_database: str) -> None:
    url = empty_database
    _seed_0006(url)
    upgrade(url)
    # Coverage never measured stays unknown (NULL), never 1.0; no answer was flagged; the job has no bounds.
    assert _rows(url, "SELECT path, label, coverage, uncertain FROM tile_results ORDER BY path") == [
        ("17/5/6.png", "Forest", None, False), ("scans/a.jpg", "River", None, False)]
    assert _rows(url, "SELECT id, min_coverage, uncertain_below FROM jobs") == [(1, None, None)]
    assert _rows(url, "SELECT classified, uncertain FROM job_batches") == [(2, 0)]
    engine = create_engine(url)
    with engine.begin() as conn:  # rows written after the upgrade, as the new code writes them
        conn.execute(text("UPDATE tile_results SET coverage = 0.03125, uncertain = :yes WHERE z = 17"), {"yes": True})
        conn.execute(text("UPDATE jobs SET min_coverage = 0, uncertain_below = 0.7"))
    engine.dispose()
    assert _rows(url, "SELECT coverage, uncertain FROM tile_results WHERE z = 17") == [(0.03125, True)]

    command.downgrade(alembic_config(url), "0006")
    assert _rows(url, "SELECT path, label, confidence FROM tile_results ORDER BY path") == [
        ("17/5/6.png", "Forest", 0.4), ("scans/a.jpg", "River", 0.8)]
    assert _rows(url, "SELECT id, state FROM jobs") == [(1, "completed")]
    upgrade(url)  # and up again: the columns come back empty
    assert _rows(url, "SELECT coverage, uncertain FROM tile_results ORDER BY path") == [(None, False), (None, False)]


def _seed_0007(url: str) -> None:
    """A 0007 database whose jobs stand as the producer left them: enqueuing ones being enqueued, retried (its note
    in the message) and resumed, a queued one with a stale resume note, a finished one, and training jobs."""
    upgrade(url, "0007")
    jobs = [(1, "classify", "enqueuing", None), (2, "classify", "enqueuing", "retry in progress"),
            (3, "classify", "enqueuing", "resume in progress"), (4, "classify", "queued", "resume in progress"),
            (5, "classify", "completed", "resumed: 3 missing tile(s) enqueued again"),
            (6, "train", "enqueuing", None), (7, "train", "running", "training")]
    engine = create_engine(url)
    with engine.begin() as conn:
        for job_id, kind, state, message in jobs:
            conn.execute(text("INSERT INTO jobs (id, kind, state, source, region, message, seq_reserved, "
                              "seq_recorded, total_tiles, total_batches, skipped_tiles, created_at, updated_at) "
                              "VALUES (:id, :kind, :state, '{}', '{}', :message, 0, 0, 0, 0, 0, :now, :now)"),
                         {"id": job_id, "kind": kind, "state": state, "message": message, "now": NOW})
    engine.dispose()


def test_0008_reads_each_jobs_phase_from_its_note_and_downgrades(empty_database: str) -> None:
    url = empty_database
    _seed_0007(url)
    upgrade(url)
    # The note drove the state machine only while a job was enqueuing: that is where it becomes the phase.
    assert _rows(url, "SELECT id, state, phase FROM jobs ORDER BY id") == [
        (1, "enqueuing", "enqueue"), (2, "enqueuing", "retry"), (3, "enqueuing", "resume"), (4, "queued", None),
        (5, "completed", None), (6, "enqueuing", None), (7, "running", None)]
    assert _rows(url, "SELECT message FROM jobs WHERE id IN (2, 3) ORDER BY id") == [
        ("retry in progress",), ("resume in progress",)]  # messages are kept for people

    command.downgrade(alembic_config(url), "0007")
    assert _rows(url, "SELECT id, state, message FROM jobs WHERE id <= 3 ORDER BY id") == [
        (1, "enqueuing", None), (2, "enqueuing", "retry in progress"), (3, "enqueuing", "resume in progress")]
    upgrade(url)  # and up again: the phases are read from the notes again
    assert _rows(url, "SELECT phase FROM jobs WHERE id <= 3 ORDER BY id") == [("enqueue",), ("retry",), ("resume",)]
