"""Options that several commands share, as typer aliases: the same flag, metavar and help everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

from core.bbox import EXAMPLE
from core.errors import TileclassError

BBOX_HELP = f"WGS84 bounding box W,S,E,N in degrees (west and south are negative), e.g. {EXAMPLE}."
MODEL_HELP = ("Model hash, or a unique prefix of 6+ characters. Default: the job's model, else the latest registered "
              "model with results for the tile or region asked.")
TABLE_FORMATS = ("table", "json", "csv", "geojson")
FILE_FORMATS = ("geojson", "csv")

Bbox = Annotated[str | None, typer.Option("--bbox", metavar="W,S,E,N", help=BBOX_HELP)]
RequiredBbox = Annotated[str, typer.Option("--bbox", metavar="W,S,E,N", help=BBOX_HELP)]
Zoom = Annotated[int | None, typer.Option("--zoom", "-z", help="Zoom level of the tiles to read (0..24).")]
RequiredZoom = Annotated[int, typer.Option("--zoom", "-z", help="Zoom level of the tiles to read (0..24).")]
ModelRef = Annotated[str | None, typer.Option("--model", help=MODEL_HELP)]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
IncludeEmpty = Annotated[bool, typer.Option(
    "--include-empty", help="Also list empty tiles (no tile at the source, entirely transparent or nodata): no "
                            "label, \"empty\": true and the reason.")]
TableFormat = Annotated[str, typer.Option("--format", "-f", help="Output: table, json, csv or geojson.")]
FileFormat = Annotated[str, typer.Option(
    "--format", "-f", help="geojson (tile polygons) or csv (one row per tile, with per-class probabilities).")]
TopK = Annotated[int, typer.Option("--top-k", help="How many of the most probable classes to list.")]
MaxQueued = Annotated[int | None, typer.Option(
    help="Most batches left waiting in the broker (then it waits). Default: TILECLASS_MAX_QUEUED_BATCHES.")]
MAX_BATCH_SIZE = 10_000
Tta = Annotated[bool, typer.Option(
    "--tta", help="Test-time augmentation: average the probabilities over flipped and turned copies of each "
                  "image (--tta-views of them; each costs one more forward pass).")]
TtaViews = Annotated[int, typer.Option(
    "--tta-views", help="With --tta: 2 (identity, flip), 4 (both flips, half turn) or 8 (every flip and quarter "
                        "turn).")]


def check_format(fmt: str, choices: tuple[str, ...]) -> str:
    if fmt not in choices:
        raise TileclassError(f"unknown format {fmt!r}: choose {', '.join(choices[:-1])} or {choices[-1]}")
    return fmt


def check_batching(batch_size: int | None, max_queued: int | None, default_max_queued: int) -> int:
    """Check ``--batch-size`` and ``--max-queued``; returns the queue bound to use."""
    if batch_size is not None and not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise TileclassError(f"--batch-size must be 1..{MAX_BATCH_SIZE} (got {batch_size})")
    bound = default_max_queued if max_queued is None else max_queued
    if bound < 1:
        raise TileclassError(f"--max-queued must be at least 1 (got {bound})")
    return bound


def check_share(option: str, value: float | None) -> float | None:
    """``value`` of a share option (``--min-coverage``, ``--uncertain-below``) if it is None or within 0..1."""
    if value is not None and not 0.0 <= value <= 1.0:  # NaN too: it compares false
        raise TileclassError(f"{option} must be a number from 0 to 1 (got {value:g})")
    return value
