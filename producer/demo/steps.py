"""The demo's steps as a person would type them: ``tileclass`` child processes on the embedded default, a
background worker that is stopped on every exit path (Ctrl-C included), and the check against the land cover."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import typer

from core.errors import TileclassError
from core.settings import is_own_variable

# Compiling pays off over millions of tiles, not over the demo's few hundred small ones.
WORKER_ARGS = ("worker", "--device", "cpu", "--no-compile")


def _env() -> dict[str, str]:
    """The embedded default: drop any TILECLASS_* deployment settings from the caller's environment."""
    env = {k: v for k, v in os.environ.items() if not is_own_variable(k)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def tileclass(args: Sequence[str], *, capture: bool = False) -> str:
    typer.secho(f"\n$ tileclass {' '.join(args)}", fg=typer.colors.CYAN, err=True)
    result = subprocess.run([sys.executable, "-m", "producer", *args], env=_env(), text=True,
                            stdout=subprocess.PIPE if capture else None)
    if result.returncode != 0:
        raise TileclassError(f"demo step 'tileclass {args[0]}' failed with exit code {result.returncode}")
    return result.stdout or ""


@contextmanager
def background_worker(log: Path) -> Iterator[subprocess.Popen[bytes]]:
    typer.secho(f"\n$ tileclass {' '.join(WORKER_ARGS)} &   (log: {log})", fg=typer.colors.CYAN, err=True)
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "producer", *WORKER_ARGS],
                                   env=_env(), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)  # warm shutdown of the launcher and its Celery children
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        _kill(process)
    except KeyboardInterrupt:  # Ctrl-C while waiting for the warm shutdown: do not wait, do not leave them
        _kill(process)
        raise
    typer.echo("background worker stopped", err=True)


def _kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # the launcher's children share its process group
    process.wait()
    typer.echo("background worker killed", err=True)


def wait_for_job(job_id: int, worker: subprocess.Popen[bytes], timeout_s: float) -> dict[str, object]:
    """Poll the job until it completes; fail clearly if the worker dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        status = json.loads(_quiet(["status", str(job_id), "--json"]))
        if status["state"] in ("completed", "cancelled", "failed"):
            return dict(status)
        if worker.poll() is not None:
            raise TileclassError(f"the background worker exited with code {worker.returncode}; see worker.log")
        if time.monotonic() > deadline:
            raise TileclassError(f"job {job_id} did not finish within {timeout_s:.0f} s; see worker.log")
        line = f"  job {job_id}: {status['classified']}/{status['total']} classified, {status['failed']} failed"
        if line != last:
            typer.echo(line, err=True)
            last = line
        time.sleep(1)


def _quiet(args: Sequence[str]) -> str:
    result = subprocess.run([sys.executable, "-m", "producer", *args], env=_env(), text=True, capture_output=True)
    if result.returncode != 0:
        raise TileclassError(f"'tileclass {' '.join(args)}' failed: {result.stderr.strip()}")
    return result.stdout


def agreement(truth: dict[str, str]) -> float:
    """Share of the region's tiles whose stored label is the class they were generated from."""
    from core.db import session_scope
    from core.queries import tile_result
    from core.tiles import Tile

    agreeing = 0
    with session_scope() as session:
        for spec, label in truth.items():
            answer = tile_result(session, tile=Tile.parse(spec))
            agreeing += answer is not None and answer.label == label
    return agreeing / max(len(truth), 1)


def new_shell_setup() -> str | None:
    """The command that gives a new terminal this ``tileclass``, or None when it already finds it.

    ``make demo`` runs ``.venv/bin/tileclass``: a new terminal has no ``tileclass`` until that virtual environment is
    activated. Outside a virtual environment, an installation whose scripts folder is not on PATH gets an alias.
    """
    activate = Path(sys.prefix) / "bin" / "activate"
    if sys.prefix != sys.base_prefix and activate.is_file():
        return f"source {shlex.quote(str(activate))}"
    if shutil.which("tileclass") is None:
        return "alias tileclass=" + shlex.quote(f"{shlex.quote(sys.executable)} -m producer")
    return None


def print_hand_steps(steps: Sequence[Sequence[str]], *, try_now: Sequence[str]) -> None:
    """Print the demo's steps as ``tileclass`` commands for a new terminal, ending with one line to copy that runs
    ``tileclass try_now`` on the demo's results."""
    setup = new_shell_setup()
    here = f"cd {shlex.quote(str(Path.cwd()))}"
    typer.echo("\nTo do each step by hand, in a new terminal:")
    if setup is not None:
        typer.echo(f"  {setup}   # makes tileclass a command in this terminal")
    typer.echo(f"  {here}   # the demo's database and broker folder")
    for args in steps:
        typer.echo("  tileclass " + " ".join(args))
    typer.echo("Try one now:\n  " + " && ".join([*([setup] if setup else []), here, "tileclass " + " ".join(try_now)]))
