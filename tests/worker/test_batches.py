"""A classify batch from message to database, run in this process against real SQLite and PostgreSQL."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import jobs
from core.db import session_scope
from core.errors import HostError
from core.messages import ClassifyBatch
from core.schema import FailedTile, JobBatch, JobKind, JobState, Model, TileResult
from core.tiles import Tile
from tests.worker.conftest import World
from tests.worker.support import EUROSAT, broken_tiles, tile_tree, tiny_checkpoint
from worker import batches

pytestmark = pytest.mark.integration


def counts(job_id: int) -> tuple[int, int, str]:
    with session_scope() as session:
        results = session.scalar(select(func.count()).select_from(TileResult).where(TileResult.job_id == job_id))
        failed = session.scalar(select(func.count()).select_from(FailedTile).where(FailedTile.job_id == job_id))
        return int(results or 0), int(failed or 0), jobs.get_job(session, job_id).state


def failure_reasons(job_id: int) -> dict[str, str]:
    with session_scope() as session:
        return {f.path: f.reason for f in session.scalars(select(FailedTile).where(FailedTile.job_id == job_id))}


def test_a_batch_with_broken_tiles_records_everything_and_completes_its_job(world: World) -> None:
    good = tile_tree(world.root, 9)
    broken = broken_tiles(world.root)
    escaping = Tile(None, None, None, "../../etc/passwd")
    batch = world.job([*good[:4], *broken, escaping, *good[4:]])
    assert batches.run_batch(batch, world.settings) == {"classified": 9, "failed": len(broken) + 1, "empty": 0}
    assert counts(batch.job_id) == (9, len(broken) + 1, JobState.COMPLETED)
    reasons = failure_reasons(batch.job_id)
    assert "not a plain path inside its root" in reasons.pop("../../etc/passwd")
    assert {path: next(w for r, w in broken.items() if r[3] == path) in reason for path, reason in reasons.items()} \
        == {row[3]: True for row in broken}
    with session_scope() as session:
        row = session.get(JobBatch, (batch.job_id, 0))
        assert row is not None and (row.state, row.classified, row.failed) == ("done", 9, len(broken) + 1)


def test_a_redelivered_batch_changes_nothing_but_the_attempt_count(world: World) -> None:
    batch = world.job([*tile_tree(world.root, 5), *list(broken_tiles(world.root))[:1]])
    batches.run_batch(batch, world.settings)
    batches.run_batch(batch, world.settings)
    assert counts(batch.job_id) == (5, 1, JobState.COMPLETED)
    with session_scope() as session:
        assert session.scalar(select(FailedTile.attempts)) == 2
        assert jobs.progress(session, job_id=batch.job_id).classified == 5


def test_a_message_that_contradicts_its_job_is_dropped_without_failing_tiles(world: World,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    rows = tile_tree(world.root, 3)
    other_model = world.job(rows, model_hash="f" * 64)  # a model nobody registered, and not the job's
    assert batches.run_batch(other_model, world.settings) == {"dropped": "does not match its job"}
    job = world.job(rows)
    other_source = ClassifyBatch(job.job_id, 0, job.model_hash, "elsewhere", rows)
    assert batches.run_batch(other_source, world.settings) == {"dropped": "does not match its job"}
    with session_scope() as session:
        training = jobs.create_job(session, kind=JobKind.TRAIN).id
    assert batches.run_batch(ClassifyBatch(training, 0, job.model_hash, "tiles", rows),
                             world.settings) == {"dropped": "does not match its job"}
    assert "names source 'elsewhere', the job 'tiles'" in caplog.text and "names a train job" in caplog.text
    for batch in (other_model, job):
        assert counts(batch.job_id) == (0, 0, JobState.QUEUED)
        assert failure_reasons(batch.job_id) == {}


def test_a_checkpoint_that_no_longer_matches_its_hash_is_a_host_error_that_fails_nothing(world: World,
                                                                                      tmp_path: Path) -> None:
    other = tiny_checkpoint(tmp_path / "other", seed=1)
    shutil.copyfile(other, world.settings.model_dir / f"{world.model_hash}.pt")
    batch = world.job(tile_tree(world.root, 3))
    with pytest.raises(HostError, match=rf"model {world.model_hash[:12]} refused on this host: .*expected") as caught:
        batches.run_batch(batch, world.settings)
    assert not caught.value.broken
    assert failure_reasons(batch.job_id) == {}
    assert counts(batch.job_id) == (0, 0, JobState.QUEUED)


def test_a_registered_model_without_a_checkpoint_on_this_host_is_a_host_error(world: World) -> None:
    (world.settings.model_dir / f"{world.model_hash}.pt").unlink()
    with session_scope() as session:  # nor at the path it was registered from
        session.get(Model, world.model_hash).path = str(world.root / "gone.pt")
    batch = world.job(tile_tree(world.root, 2))
    with pytest.raises(HostError, match=f"no checkpoint for model {world.model_hash[:12]}"):
        batches.run_batch(batch, world.settings)
    assert failure_reasons(batch.job_id) == {}


def test_batches_of_cancelled_or_unknown_jobs_are_dropped(world: World) -> None:
    batch = world.job(tile_tree(world.root, 2), state=JobState.CANCELLED)
    assert batches.run_batch(batch, world.settings) == {"dropped": "cancelled"}
    assert counts(batch.job_id) == (0, 0, JobState.CANCELLED)
    ghost = ClassifyBatch(9999, 0, world.model_hash, "tiles", batch.tiles)
    assert batches.run_batch(ghost, world.settings) == {"dropped": "unknown job"}


def test_an_unknown_root_is_a_host_error_that_fails_no_tile(world: World) -> None:
    batch = world.job(tile_tree(world.root, 2))
    batch = ClassifyBatch(batch.job_id, 0, batch.model_hash, "elsewhere", batch.tiles)
    with session_scope() as session:
        jobs.job_row(session, batch.job_id).source = {"kind": "folder", "name": "elsewhere", "path": None,
                                                      "layout": "plain"}
    with pytest.raises(HostError, match=r"^unknown tile source 'elsewhere': set TILECLASS_TILE_ROOTS or "
                       r"TILECLASS_SOURCES \(known: none configured\)$") as caught:
        batches.run_batch(batch, world.settings)
    assert not caught.value.broken  # no root is configured: nothing says the host is broken
    assert failure_reasons(batch.job_id) == {}


def test_a_missing_or_unmounted_root_is_a_host_error_and_broken_when_no_configured_root_exists(
        world: World, tmp_path: Path) -> None:
    batch = world.job(tile_tree(world.root, 2))
    empty = tmp_path / "mountpoint"
    empty.mkdir()
    elsewhere = tmp_path / "other-root"
    elsewhere.mkdir()
    source = {"kind": "folder", "name": "tiles", "path": str(world.root), "layout": "plain"}
    for roots, problem, broken in [({"tiles": empty, "other": elsewhere}, "is empty (not mounted?)", False),
                                   ({"tiles": tmp_path / "gone", "other": elsewhere}, "cannot be read", False),
                                   ({"tiles": tmp_path / "gone"}, "cannot be read", True)]:
        sources = world.settings.sources.model_copy(update={"roots": roots})
        settings = world.settings.model_copy(update={"sources": sources})
        with pytest.raises(HostError, match=f"tile root 'tiles' at .* {re.escape(problem)}") as caught:
            batches.tile_files(batch, settings, source)
        assert caught.value.broken is broken, roots
    assert failure_reasons(batch.job_id) == {}


def test_three_spellings_of_one_tile_path_give_one_result_row(world: World) -> None:
    (world.root / "a").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EUROSAT / "Forest" / "Forest_1.jpg", world.root / "a" / "b.jpg")
    job = world.job([Tile(None, None, None, "a/b.jpg")])  # as enqueued: the message spells that one tile 3 ways
    message = {"format": 2, "job_id": job.job_id, "seq": 0, "model_hash": job.model_hash, "source": "tiles",
               "tiles": [[None, None, None, path] for path in ("a//b.jpg", "./a/b.jpg", "a/b.jpg/")]}
    batches.run_batch(ClassifyBatch.from_message(message), world.settings)
    with session_scope() as session:
        assert list(session.scalars(select(TileResult.path).where(TileResult.job_id == job.job_id))) == ["a/b.jpg"]


def test_a_folder_swapped_for_a_symlink_after_the_path_check_is_not_read_from_outside(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.sources import folder
    from worker.pipeline import classify_tiles
    from worker.runtime import current

    rows = [Tile(None, None, None, "swapped/a.jpg"), Tile(None, None, None, "kept/b.jpg")]
    for row in rows:
        (world.root / row.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(EUROSAT / "Forest" / "Forest_1.jpg", world.root / row.path)
    batch = world.job(rows)
    files = batches.tile_files(batch, world.settings, {"kind": "folder", "name": "tiles", "path": str(world.root),
                                                       "layout": "plain"})
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(EUROSAT / "SeaLake" / "SeaLake_1.jpg", outside / "a.jpg")
    checked = folder.safe_join

    def swapped_after_the_check(root: Path, relative: str) -> Path:
        path = checked(root, relative)
        if relative.startswith("swapped/") and not (root / "swapped").is_symlink():
            shutil.rmtree(root / "swapped")
            (root / "swapped").symlink_to(outside, target_is_directory=True)  # after safe_join, before the read
        return path

    monkeypatch.setattr(folder, "safe_join", swapped_after_the_check)
    state = current(world.settings)
    classifier = state.models.get(world.model_hash, lambda: world.settings.model_dir / f"{world.model_hash}.pt")
    outcome = classify_tiles(classifier, files, chunk_size=4, pool=state.pool)
    assert [c.tile.path for c in outcome.classified] == ["kept/b.jpg"]
    assert [(f.tile.path, f.reason) for f in outcome.failures] == [
        ("swapped/a.jpg", "path leads outside its root (a folder on it was replaced by a symlink)")]
