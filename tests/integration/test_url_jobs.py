"""Real `tileclass worker` processes (Redis, a SQLite file) fetching from a real loopback tile server with faults:
the same labels as the folder, tiles the server lacks empty, a tile that keeps answering 500 failed alone, a 429
retried, a rerun served from the cache, a dead server failing nothing while another job completes, and the token
nowhere; a server dripping its answers holds a worker neither past the fetch deadline nor past SIGTERM, and a
redirect to another host is never followed."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from core import host_problems, jobs
from core.db import session_scope
from core.models.registry import register_checkpoint
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
                "data_dir": tmp_path / "state", "worker_host_cooldown": "1", "tile_cache": tmp_path / "cache",
                "source_env": '["TILE_TOKEN"]'}
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


def test_a_dripping_server_holds_a_worker_neither_past_the_deadline_nor_past_sigterm_and_no_tile_fails(
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
    tree = tile_tree(folder, 8, width=4)
    options = ["--device", "cpu", "--processes", "1", "--no-compile", "--batch-size", "8"]
    with serving(folder) as server, serving(folder) as other:
        for tile in tree:  # one byte every half second: each wait far inside the read timeout, each tile ~30 min
            server.fault(str(tile), "always:drip:0.5")
        # SIGTERM while a fetch drips, with a deadline of an hour, then a Ctrl-C (the launcher's second signal: a
        # cold shutdown, which the solo pool cannot apply to its task): the worker stops at once, its batch goes
        # back, no retry is counted and nothing fails.
        first_log = tmp_path / "first.log"
        first = start_launcher(options, worker_env(**settings, fetch_deadline="3600"), cwd=tmp_path, log=first_log)
        with running(first):
            dripping = enqueue(server.template, model, *region(tree), "--probe", "0")
            wait_for(lambda: server.dripping > 0, what="a fetch dripping", timeout=180, logs=(first_log,),
                     processes=(first,))
            first.send_signal(signal.SIGTERM)
            time.sleep(0.05)
            first.send_signal(signal.SIGINT)
            assert first.wait(timeout=60) == 0, first_log.read_text()  # within its warm-shutdown window
        output = first_log.read_text()
        assert "batch put back" in output and "Traceback" not in output and "retry 1 of" not in output, output
        assert rows_of(FailedTile, dripping) == {} and rows_of(TileResult, dripping) == {}

        # The batch is back in the queue. With a 3 s deadline the still dripping server is a host problem: no tile
        # fails, and a folder job queued behind it completes.
        log = tmp_path / "second.log"
        second = start_launcher(options, worker_env(**settings, fetch_deadline="3"), cwd=tmp_path, log=log)
        with running(second):
            wait = {"timeout": 180, "logs": (log,), "processes": (second,)}
            wait_for(lambda: any(p.job_id == dripping and "tile server too slow" in p.reason for p in problems()),
                     what="the dripping server's host problem", **wait)
            tile_tree(tmp_path / "elsewhere", 8, width=4, x0=71000)  # other tiles: their results are not the job's
            beside = enqueue(str(tmp_path / "elsewhere"), model)
            wait_for(lambda: finished(beside), what="a folder job behind the dripping one", **wait)
            assert len(rows_of(TileResult, beside)) == 8
            assert rows_of(FailedTile, dripping) == {}
            # The server heals, but sends one tile to another host (never followed: that tile fails alone) and
            # another to the same host (followed).
            elsewhere = other.template.format(z=17, x=tree[0].x, y=tree[0].y)
            server.faults = {str(tree[0]): ["always:redirect:" + elsewhere],
                             str(tree[1]): [f"redirect:/tiles/{tree[1]}.jpg?moved=1"]}
            wait_for(lambda: finished(dripping), what="the healed job", **wait)
    refused = f"redirected to another host, 127.0.0.1:{other.port} (enqueue --allow-redirect-host " \
              f"127.0.0.1:{other.port} follows it)"
    assert rows_of(FailedTile, dripping) == {tree[0].xyz(): refused}
    assert set(rows_of(TileResult, dripping)) == {tile.xyz() for tile in tree[1:]}
    assert sum(other.requests.values()) == 0 and "moved=1" in server.queries
