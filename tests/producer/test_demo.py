"""`tileclass demo` end to end on the embedded default, small: real training (one epoch of a few generated images),
a real background worker, and the line it ends with, run as a new terminal would."""

from __future__ import annotations

import io
import json
import os
import re
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


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_demo_runs_the_pipeline_serves_the_map_and_stops_its_worker(tmp_path: Path) -> None:
    import signal
    import time

    import httpx

    from tests.api.server_process import free_port

    out, log, port = tmp_path / "demo", tmp_path / "demo.log", free_port()
    with log.open("w") as sink:
        demo = subprocess.Popen(
            [sys.executable, "-m", "producer", "demo", "--out", str(out), "--epochs", "1", "--per-class", "20",
             "--region-size", "4", "--serve", "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT, start_new_session=True,
        )
    try:
        deadline, url = time.monotonic() + 280, f"http://127.0.0.1:{port}"
        while not _answers(f"{url}/healthz"):  # the server is up (on a busy machine, a while after its banner)
            assert demo.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
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
    # Training ran the epochs asked for, whatever the machine's speed: no time budget, no probe of the machine.
    assert len(json.loads((out / "training" / "metrics.json").read_text())["epochs"]) == 1
    assert "budget" not in output
    _the_last_line_runs_tileclass_in_a_new_terminal(output, out)


def _the_last_line_runs_tileclass_in_a_new_terminal(output: str, out: Path) -> None:
    """The demo's steps say how a new terminal finds ``tileclass`` (this virtual environment's activate script),
    and its last line, copied into a shell whose PATH has no ``tileclass``, answers on the demo's results."""
    lines = output.splitlines()
    activate = f"source {Path(sys.prefix) / 'bin' / 'activate'}"
    steps = lines[lines.index("To do each step by hand, in a new terminal:"):]
    assert steps[1].startswith(f"  {activate}") and steps[2].startswith(f"  cd {out.resolve()}")
    last = steps[steps.index("Try one now:") + 1]
    assert last == f"  {activate} && cd {out.resolve()} && tileclass summary 1"
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    assert subprocess.run(["bash", "-c", "command -v tileclass"], env=env, capture_output=True).returncode != 0
    shell = subprocess.run(["bash", "-c", last], env=env, capture_output=True, text=True, timeout=60)
    assert shell.returncode == 0, shell.stderr
    assert "Summary of job 1" in shell.stdout and re.search(r"classified +16\n", shell.stdout), shell.stdout


def test_ctrl_c_stops_the_demo_and_its_worker(tmp_path: Path) -> None:
    import signal
    import time

    out, log = tmp_path / "demo", tmp_path / "demo.log"
    with log.open("w") as sink:
        demo = subprocess.Popen(
            [sys.executable, "-m", "producer", "demo", "--out", str(out), "--epochs", "1", "--per-class", "20",
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
