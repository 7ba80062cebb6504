"""Real `tileclass worker` processes (Redis, a SQLite file) classifying one region from a folder, an MBTiles and a
PMTiles archive built from that folder: the same label for every tile, a corrupt archive tile failed alone, an
archive not yet on the worker's host failing nothing until it is there; and a GeoTIFF mosaic of the folder, cut
on the workers, every tile of it classified."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from core import host_problems, jobs
from core.db import session_scope
from core.models.registry import register_checkpoint
from core.schema import FailedTile, JobState, TileResult
from core.settings import get_settings
from core.sources.roots import source_name_for
from testkit.archives import pmtiles_from_mbtiles, write_mbtiles
from testkit.rasters import mosaic
from tests.producer.conftest import cli
from tests.worker.support import running, start_launcher, tile_tree, tiny_checkpoint, wait_for, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CORRUPT = (17, 70100, 42100)  # a tile only the archives hold, its bytes no image


def enqueue(source: Path, model: str, *extra: str) -> int:
    result = cli("enqueue", str(source), "--model", model, "--batch-size", "16", "--json", *extra)
    assert result.exit_code == 0, result.output
    return int(json.loads(result.stdout)["job_id"])


def finished(job_id: int) -> bool:
    with session_scope() as session:
        return jobs.get_job(session, job_id).state in (JobState.COMPLETED, JobState.FAILED)


def labels_of(job_id: int) -> dict[tuple[int, int, int], str]:
    with session_scope() as session:
        rows = session.scalars(select(TileResult).where(TileResult.job_id == job_id))
        return {(r.z, r.x, r.y): r.label for r in rows}


def failures_of(job_id: int) -> dict[tuple[int, int, int], str]:
    with session_scope() as session:
        rows = session.scalars(select(FailedTile).where(FailedTile.job_id == job_id))
        return {(r.z, r.x, r.y): r.reason for r in rows}


def test_folder_mbtiles_and_pmtiles_give_the_same_labels_and_a_missing_archive_fails_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, sqlite_url: str) -> None:
    settings = {"database_url": sqlite_url, "broker_url": redis_url, "model_dir": tmp_path / "models",
                "data_dir": tmp_path / "state", "worker_host_cooldown": "1"}
    for key, value in settings.items():
        monkeypatch.setenv(f"TILECLASS_{key.upper()}", str(value))
    get_settings.cache_clear()
    with session_scope() as session:
        model = register_checkpoint(session, checkpoint=tiny_checkpoint(tmp_path / "trained"),
                                    settings=get_settings()).hash
    folder = tmp_path / "tiles"
    tree = tile_tree(folder, 48)
    rows = [(*tile.xyz(), (folder / str(tile.path)).read_bytes()) for tile in tree]
    mbtiles = write_mbtiles(tmp_path / "region.mbtiles", [*rows, (*CORRUPT, b"\xff\xd8 not a jpeg")])
    pmtiles = pmtiles_from_mbtiles(tmp_path / "region.pmtiles", mbtiles)
    # The worker's host has its own copy of the MBTiles, under the source's name, not there yet when the job starts.
    worker_copy = tmp_path / "worker-host" / "region.mbtiles"
    name = source_name_for(mbtiles, get_settings())
    log = tmp_path / "workers.log"
    launcher = start_launcher(["--device", "cpu", "--processes", "1", "--no-compile", "--batch-size", "8"],
                              worker_env(**settings, sources=json.dumps({name: str(worker_copy)})), cwd=tmp_path,
                              log=log)
    with running(launcher):
        wait = {"timeout": 180, "logs": (log,), "processes": (launcher,)}
        from_folder = enqueue(folder, model)
        wait_for(lambda: finished(from_folder), what="the folder job", **wait)
        reference = labels_of(from_folder)
        assert set(reference) == {tile.xyz() for tile in tree}

        from_mbtiles = enqueue(mbtiles, model, "--force")
        wait_for(lambda: any(p.job_id == from_mbtiles for p in problems()), what="the host problem", **wait)
        assert failures_of(from_mbtiles) == {} and labels_of(from_mbtiles) == {}  # the host's fault, not the tiles'
        status = cli("status", str(from_mbtiles))
        assert "cannot be opened on this host" in status.output, status.output
        worker_copy.parent.mkdir()
        shutil.copy(mbtiles, worker_copy)

        for job in (from_mbtiles, None):  # one job after the other: a result row names the last job that wrote it
            job = job or enqueue(pmtiles, model, "--force")
            wait_for(lambda j=job: finished(j), what=f"job {job}", **wait)
            assert labels_of(job) == reference  # tile for tile
            assert list(failures_of(job)) == [CORRUPT]
            assert "image" in failures_of(job)[CORRUPT] or "corrupt" in failures_of(job)[CORRUPT]

        # The same tiles as a GeoTIFF, cut by the worker's own threads: every tile of its cover classified.
        raster = mosaic(tmp_path / "region.tif", {tile: folder / str(tile.path) for tile in tree})
        from_raster = enqueue(raster, model, "--force")
        wait_for(lambda: finished(from_raster), what="the GeoTIFF job", **wait)
        assert set(labels_of(from_raster)) == set(reference) and failures_of(from_raster) == {}


def problems() -> list[host_problems.HostProblemRow]:
    with session_scope() as session:
        return host_problems.problems(session)
