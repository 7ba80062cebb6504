"""A real ``tileclass serve`` whose job reads a loopback tile server that drips its answers (one byte every half
second): imagery requests never starve the other routes, those beyond the imagery threads are 503 with
Retry-After, and SIGTERM stops the server promptly though its imagery reads are still waiting."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from api.imagery_gate import SLOTS
from core.settings import load_settings
from core.sources import UrlSource
from tests.api.server_process import running_server
from tests.api.support import BASE, ZOOM, Region, tile_png
from tests.api.test_imagery import add_job
from tests.tile_server import serving

pytestmark = pytest.mark.integration
REQUESTS = 45  # what once held all 40 of AnyIO's threads: /healthz timed out and SIGTERM was ignored


def until(condition: object, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


def test_dripping_imagery_never_starves_healthz_and_the_server_stops_on_sigterm(
        sqlite_region: Region, sqlite_url: str, tmp_path: Path) -> None:
    tile = f"{ZOOM}/{BASE[0]}/{BASE[1]}"
    (sqlite_region.root / tile).with_suffix(".jpg").write_bytes(tile_png(*BASE))
    answers: list[int | str] = []

    def ask(url: str) -> None:
        try:
            answers.append(httpx.get(url, timeout=120).status_code)
        except httpx.TransportError as exc:  # the server stopped before answering it
            answers.append(exc.__class__.__name__)

    with serving(sqlite_region.root) as tiles:
        tiles.fault(tile, "always:drip:0.5")
        job = add_job(sqlite_url, sqlite_region, UrlSource.at(tiles.template, settings=load_settings()).to_record())
        # A deadline far beyond the test: only the server's own limits can end these reads.
        with running_server(sqlite_url, tmp_path / "serve.log", env={"TILECLASS_FETCH_DEADLINE": "3600"}) as server:
            askers = [threading.Thread(target=ask, args=(f"{server.url}/imagery/{job}/{tile}",), daemon=True)
                      for _ in range(REQUESTS)]
            for asker in askers:
                asker.start()
            until(lambda: tiles.dripping >= SLOTS, timeout=60, what=f"{SLOTS} imagery reads dripping")
            assert httpx.get(f"{server.url}/healthz", timeout=10).json() == {"status": "ok"}
            jobs = httpx.get(f"{server.url}/api/jobs", timeout=10)
            assert jobs.status_code == 200 and any(row["job_id"] == job for row in jobs.json())
            # Every request beyond the imagery threads is told to come back, instead of queueing behind them.
            until(lambda: len(answers) >= REQUESTS - SLOTS, timeout=60, what="the busy answers")
            assert answers == [503] * (REQUESTS - SLOTS) and tiles.dripping == SLOTS
            busy = httpx.get(f"{server.url}/imagery/{job}/{tile}", timeout=30)
            assert busy.status_code == 503 and busy.headers["retry-after"] == "2"

            server.process.send_signal(signal.SIGTERM)
            server.process.wait(timeout=30)  # instead of never
            for asker in askers:
                asker.join(timeout=10)
    assert len(answers) == REQUESTS  # the dripping requests ended with the server
    until(lambda: tiles.dripping == 0, timeout=10, what="the tile server's drips to end")
    assert "Traceback" not in server.output(), server.output()
