"""Real `tileclass worker` processes (Redis, a SQLite file) fetching from a real loopback tile server with faults:
the same labels as the folder, tiles the server lacks empty, a tile that keeps answering 500 failed alone, a 429
retried, a rerun served from the cache, a dead server failing nothing while another job completes, and the token
nowhere."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from sqlalchemy import select

from core import host_problems, jobs
from core.db import session_scope
from core.registry import register_checkpoint
from core.schema import EmptyTile, FailedTile, Job, JobState, TileResult
from core.settings import get_settings
from core.tiles import Tile
from tests.producer.conftest import cli
from tests.tile_server import serving
from tests.worker.support import running, start_launcher, tile_tree, tiny_checkpoint, wait_for, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOKEN = "tok-1a2b3c4d5e6f"


def region(tiles: list[Tile]) -> list[str]:
    xs, ys = [t.x for t in tiles], [t.y for t in tiles]
    west, south, *_ = Tile(17, min(xs), max(ys)).bounds()
    *_, east, north = Tile(17, max(xs), min(ys)).bounds()
    return ["--zoom", "17", "--bbox", f"{west + 1e-6},{south + 1e-6},{east - 1e-6},{north - 1e-6}"]


def enqueue(source: str, model: str, *extra: str) -> int:
    result = cli("enqueue", source, "--model", model, "--batch-size", "12", "--json", *extra)
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    return int(json.loads(result.stdout)["job_id"])


def finished(job_id: int) -> bool:
    with session_scope() as session:
        return jobs.get_job(session, job_id).state in (JobState.COMPLETED, JobState.FAILED)


def rows_of(table: type, job_id: int) -> dict[tuple[int, int, int], str]:
    with session_scope() as session:
        found = session.scalars(select(table).where(table.job_id == job_id))
        return {(r.z, r.x, r.y): getattr(r, "label", None) or r.reason for r in found}


def test_a_tile_server_job_matches_the_folder_and_survives_faults_and_a_dead_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, sqlite_url: str) -> None:
    settings = {"database_url": sqlite_url, "broker_url": redis_url, "model_dir": tmp_path / "models",
                "data_dir": tmp_path / "state", "worker_host_cooldown": "1", "tile_cache": tmp_path / "cache"}
    for key, value in settings.items():
        monkeypatch.setenv(f"TILECLASS_{key.upper()}", str(value))
    monkeypatch.setenv("TILE_TOKEN", TOKEN)
    get_settings.cache_clear()
    with session_scope() as session:
        model = register_checkpoint(session, checkpoint=tiny_checkpoint(tmp_path / "trained"),
                                    settings=get_settings()).hash
    folder = tmp_path / "tiles"
    tree = tile_tree(folder, 48, width=8)  # 8 columns x 6 rows
    broken, slowed = tree[17], tree[30]
    beyond = [Tile(17, 70008, y) for y in range(42000, 42006)]  # in the region, not on the server: 404
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{free.getsockname()[1]}/{{z}}/{{x}}/{{y}}.jpg?token={{env:TILE_TOKEN}}"
    log = tmp_path / "workers.log"
    with serving(folder) as server:
        server.fault(str(broken), "always:500")
        server.fault(str(slowed), "429:1")
        url = server.template + "?token={env:TILE_TOKEN}"
        launcher = start_launcher(["--device", "cpu", "--processes", "1", "--no-compile", "--batch-size", "8"],
                                  worker_env(**settings), cwd=tmp_path, log=log)
        with running(launcher):
            wait = {"timeout": 180, "logs": (log,), "processes": (launcher,)}
            # First from the server: a tile with a result for the model keeps it, whatever a later source says.
            from_server = enqueue(url, model, *region(tree + beyond), "--probe", "0")
            wait_for(lambda: finished(from_server), what="the tile server job", **wait)
            served = rows_of(TileResult, from_server)
            assert rows_of(EmptyTile, from_server) == {t.xyz(): "no tile at the server (404)" for t in beyond}
            assert rows_of(FailedTile, from_server) == {broken.xyz(): "HTTP 500 after 4 tries"}
            assert server.requests[str(slowed)] == 2 and server.requests[str(broken)] == 4
            assert set(server.queries) == {f"token={TOKEN}"}

            from_folder = enqueue(str(folder), model, "--force")
            wait_for(lambda: finished(from_folder), what="the folder job", **wait)
            reference = rows_of(TileResult, from_folder)
            assert served == {k: v for k, v in reference.items() if k != broken.xyz()}  # tile for tile

            fetched = sum(server.requests.values())
            again = enqueue(url, model, *region(tree + beyond), "--force", "--probe", "0")
            wait_for(lambda: finished(again), what="the rerun", **wait)
            assert len(rows_of(TileResult, again)) == 47
            assert sum(server.requests.values()) - fetched == len(beyond) + 4  # all else came from the cache

            # A dead server: its batches go back, nothing fails; another job is served meanwhile.
            stuck = enqueue(dead, model, *region(tree), "--force", "--probe", "0")
            wait_for(lambda: any(p.job_id == stuck for p in problems()), what="the dead server's host problem", **wait)
            other = enqueue(str(folder), model, "--force")
            wait_for(lambda: finished(other), what="a folder job beside the dead server", **wait)
            assert rows_of(FailedTile, stuck) == {} and rows_of(TileResult, stuck) == {}
            status = cli("status", str(stuck))
            assert "tile server unreachable" in status.output and TOKEN not in status.output
            export = tmp_path / "export.csv"
            assert cli("export", str(from_server), "--format", "csv", "--out", str(export), "--include-empty")\
                .exit_code == 0
    reasons = [r.reason for r in problems()]
    with session_scope() as session:
        recorded = json.dumps([[j.source, j.message] for j in session.scalars(select(Job))])
        reasons += [r.reason for r in session.scalars(select(FailedTile))]
    for text in (log.read_text(), export.read_text(), recorded, json.dumps(reasons)):
        assert TOKEN not in text


def problems() -> list[host_problems.HostProblemRow]:
    with session_scope() as session:
        return host_problems.problems(session)
