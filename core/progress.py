"""Progress on stderr (stdout stays clean for results), drawn by rich: one module for every long piece of work.

- ``progress_bar``: bars of known length (loading a data set, a training epoch, an export);
- ``walk_progress``: one line redrawn from running counts, for walks whose total is not known in advance;
- ``counted``: passes rows through and advances a bar every so many rows.

It imports only rich, so model/ (training) and the commands (walks, exports) draw progress the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

Stats = TypeVar("Stats")
T = TypeVar("T")


def progress_bar(enabled: bool = True, *, transient: bool = True) -> Progress:
    """A progress display on stderr, or a silent one; add tasks with a ``status`` field (may be "").

    ``transient``: the bar disappears when done (steps of longer work); else its last state stays on screen.
    """
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(), TimeRemainingColumn(),
        console=Console(file=sys.stderr), disable=not enabled, transient=transient,
    )


@contextmanager
def walk_progress(enabled: bool, describe: Callable[[Stats], str]) -> Iterator[Callable[[Stats], None] | None]:
    """Yields a callback that redraws the line from ``describe(stats)``, or None when disabled (``--json``)."""
    if not enabled:
        yield None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(file=sys.stderr), transient=True) as progress:
        task = progress.add_task("walking…", total=None)
        yield lambda stats: progress.update(task, description=describe(stats))


def counted(rows: Iterable[T], advance: Callable[[int], object], every: int = 1000) -> Iterator[T]:
    """Yield ``rows`` unchanged, calling ``advance(n)`` every ``every`` rows and once at the end."""
    pending = 0
    for row in rows:
        yield row
        pending += 1
        if pending == every:
            advance(pending)
            pending = 0
    if pending:
        advance(pending)
