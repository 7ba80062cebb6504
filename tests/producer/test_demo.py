"""`tileclass demo` end to end on the embedded default, small: real training, a real background worker."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _processes_in(folder: Path) -> list[int]:
    """Processes whose working directory is ``folder``: the demo's worker and its children run there."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cwd").resolve() == folder.resolve():
                found.append(int(entry.name))
        except OSError:
            continue  # a process that ended meanwhile, or one we may not inspect
    return found


def test_demo_runs_the_pipeline_serves_the_map_and_stops_its_worker(tmp_path: Path) -> None:
    import signal
    import time

    import httpx

    from tests.api.server_process import free_port

    out, log, port = tmp_path / "demo", tmp_path / "demo.log", free_port()
    with log.open("w") as sink:
        demo = subprocess.Popen(
            [sys.executable, "-m", "producer", "demo", "--out", str(out), "--train-minutes", "0.15",
             "--region-size", "4", "--serve", "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT, start_new_session=True,
        )
    try:
        deadline, url = time.monotonic() + 280, f"http://127.0.0.1:{port}"
        while "tileclass serving" not in log.read_text():
            assert demo.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(1)
        job = httpx.get(f"{url}/api/jobs/1").json()
        assert (job["state"], job["classified"]) == ("completed", 16)
        login = re.search(rf"{url}/login\?token=[\w-]+", log.read_text())  # serve's login URL, printed for the map
        assert login is not None, log.read_text()[-3000:]
        with httpx.Client() as browser:  # it signs a browser in: writes (the review) then need no more
            assert browser.get(login.group(0)).status_code == 303  # to the map, with the cookie
            assert browser.get(f"{url}/api/session").json()["signed_in"] is True
        layers = httpx.get(f"{url}/api/jobs/1/layers").json()
        z, x, y = next(iter(json.loads((out / "truth.json").read_text()))).split("/")
        tile = httpx.get(layers["overlay"].format(z=z, x=x, y=y))
        label = httpx.get(f"{url}/api/tiles/{z}/{x}/{y}").json()["label"]
        colour = next(entry["colour"] for entry in layers["classes"] if entry["label"] == label)
        assert Image.open(io.BytesIO(tile.content)).convert("RGB").getpixel((128, 128)) == \
            tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C in the demo's terminal
        demo.wait(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    output = log.read_text()
    assert "job 1 completed: 16 tiles classified, 0 failed" in output
    assert "tileclass enqueue tiles --model training/model.pt" in output
    assert f"tileclass serve --port {port}" in output and f"http://127.0.0.1:{port}/?job=1" in output
    for picture in ("map.png", "training/loss.png", "training/confusion.png"):
        assert (out / picture).stat().st_size > 1000
    truth = json.loads((out / "truth.json").read_text())
    assert len(truth) == 16 and all(key.startswith("16/") for key in truth)
    assert len(list((out / "tiles" / "16").glob("*/*.png"))) == 16
    # The background worker was stopped: its log says so and no celery process of this demo is left.
    assert "Warm shutdown" in (out / "worker.log").read_text()
    assert _processes_in(out) == []


def test_ctrl_c_stops_the_demo_and_its_worker(tmp_path: Path) -> None:
    import signal
    import time

    out, log = tmp_path / "demo", tmp_path / "demo.log"
    with log.open("w") as sink:
        demo = subprocess.Popen(
            [sys.executable, "-m", "producer", "demo", "--out", str(out), "--train-minutes", "0.1",
             "--region-size", "16"],
            stdout=sink, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal, not a background job
        )
    try:
        deadline = time.monotonic() + 200
        while "tileclass worker" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # the worker is starting or classifying
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=90) == 130
    finally:
        demo.kill()
    assert "background worker" in log.read_text()
    time.sleep(1)
    assert _processes_in(out) == []
