"""The ``tileclass`` command line: one thin module per command in ``producer/commands``, registered here.

Importing this module must stay cheap: command modules import torch, celery workers or plotting only inside the
command that needs them, so ``tileclass --help`` and the producer/query commands start without torch.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from producer.commands import (
    assess,
    calibrate,
    cancel,
    correct,
    dataset,
    db,
    demo,
    diff,
    enqueue,
    eval,
    export,
    failures,
    groups,
    metrics,
    models,
    predict,
    query,
    render,
    resume,
    retry,
    serve,
    status,
    summary,
    train,
    vectorize,
    worker,
)
from producer.commands.errors import user_error


class _OneLineErrors(TyperGroup):
    """Reports a user's error raised by a command (``producer.commands.errors``: any TileclassError, the database
    unreachable, the ``ml`` extra missing) as one line on stderr, exit code 2, no traceback."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except Exception as exc:
            message = user_error(exc)
            if message is None:
                raise
            typer.echo(f"Error: {message}", err=True)
            ctx.exit(2)


app = typer.Typer(
    cls=_OneLineErrors,
    name="tileclass",
    help="Classify map tiles at scale: train a classifier, enqueue regions to Celery workers, query the results.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for command in (demo, db, train, predict, eval, calibrate, enqueue, status, resume, cancel, worker, query, summary,
                export, vectorize, diff, render, models, metrics, failures, retry, correct, dataset, assess, groups,
                serve):
    command.register(app)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
