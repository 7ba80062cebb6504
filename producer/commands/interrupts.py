"""Stopping a publishing pass (``enqueue``, ``resume``, ``retry``) from the keyboard, the same way for all three.

The first Ctrl-C asks the pass to stop at its next safe point (between batches, or while it waits for room in the
broker); a second one aborts at once. Either way what was published is recorded (``producer.publication``), and
the command prints one line on stderr and exits 130: running the same command again continues the job.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

INTERRUPTED_EXIT = 130


@contextmanager
def stoppable() -> Iterator[threading.Event]:
    """A stop event for the pass run inside; its interruption becomes one line and exit code 130."""
    from producer.publication import Interrupted

    stop = threading.Event()
    try:
        with _first_sigint_sets(stop):
            yield stop
    except Interrupted as exc:
        where = f"job {exc.job_id} is resumable" if exc.job_id is not None else "nothing was enqueued yet"
        typer.echo(f"Interrupted after {exc.stats.enqueued} tiles: {where}; run the same command again to "
                   "continue.", err=True)
        raise typer.Exit(INTERRUPTED_EXIT) from None
    except KeyboardInterrupt:
        typer.echo("Interrupted before anything was enqueued.", err=True)
        raise typer.Exit(INTERRUPTED_EXIT) from None


@contextmanager
def _first_sigint_sets(stop: threading.Event) -> Iterator[None]:
    """The first Ctrl-C asks the producer to stop at its next safe point (between batches); a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
