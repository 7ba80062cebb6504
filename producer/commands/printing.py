"""Output that several commands print the same way."""

from __future__ import annotations

import typer

from core.sources.base import WalkReport


def warn_left_out(report: WalkReport) -> None:
    """One warning line on stderr per reason the walk left files out, with a few examples."""
    for reason, count in sorted(report.skipped.items()):
        examples = ", ".join(report.examples.get(reason, []))
        typer.echo(f"warning: left out {count:,} ({reason}), e.g. {examples}", err=True)
