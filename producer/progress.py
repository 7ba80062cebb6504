"""A one-line rich progress display on stderr for walks whose total is not known in advance."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

Stats = TypeVar("Stats")


@contextmanager
def walk_progress(enabled: bool, describe: Callable[[Stats], str]) -> Iterator[Callable[[Stats], None] | None]:
    """Yields a callback that redraws the line from ``describe(stats)``, or None when disabled (``--json``)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(file=sys.stderr), transient=True) as progress:
        task = progress.add_task("walking…", total=None)
        yield lambda stats: progress.update(task, description=describe(stats))
