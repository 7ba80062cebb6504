"""``tileclass enqueue``: classify every tile of a region of a tile tree, in batches, on the workers.

Prints the job id (``--json``: one JSON object on stdout). Exit codes: 0 done (also when there was nothing to
enqueue: an empty tree or a region whose tiles are all classified), 2 bad input, 130 interrupted (the job stays
resumable: run the same command again).
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from core.errors import TileclassError, TileError, TileRootError
from producer.progress import walk_progress

if TYPE_CHECKING:
    from producer.enqueue import EnqueueRequest, EnqueueResult, EnqueueStats

MAX_BATCH_SIZE = 10_000


def enqueue(
    tile_root: Path = typer.Argument(..., help="Folder holding the tiles (its absolute path is recorded in the job)."),
    model: str = typer.Option(..., "--model", "-m", help="Checkpoint file (.pt) or a registered model hash/prefix."),
    zoom: list[str] | None = typer.Option(
        None, "--zoom", "-z", help="Zoom level(s) 0..24; repeat it or give a range like 15-17. Default: all."
    ),
    bbox: str | None = typer.Option(None, help="Region W,S,E,N in WGS84 degrees, e.g. -9.47,38.82,-9.43,38.86."),
    geojson: Path | None = typer.Option(None, help="GeoJSON file: only tiles meeting its (multi)polygon(s)."),
    scheme: str = typer.Option("xyz", help="Row order: xyz (y from the north) or tms (gdal2tiles, y from the south)."),
    layout: str | None = typer.Option(
        None, help="Path template such as '{z}-{x}-{y}.jpg' or '{x}-{y}-{z}.jpg', or 'plain' for images without "
                   "coordinates. Default: '{z}/{x}/{y}.{ext}' (ext: png, jpg, jpeg, webp).",
    ),
    batch_size: int | None = typer.Option(None, help="Tiles per message (a worker task). Default: 1024."),
    max_queued: int | None = typer.Option(
        None, help="Most batches left waiting in the broker (then it waits). Default: TILECLASS_MAX_QUEUED_BATCHES."
    ),
    force: bool = typer.Option(False, "--force", help="Classify tiles again even if they have a result; new job."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count tiles and batches per zoom; enqueue nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as one JSON object."),
) -> None:
    """Enqueue every tile of TILE_ROOT (within --zoom/--bbox/--geojson) for classification with --model."""
    from core.settings import get_settings
    from producer.enqueue import DEFAULT_BATCH_SIZE

    settings = get_settings()
    size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    if not 1 <= size <= MAX_BATCH_SIZE:
        raise TileclassError(f"--batch-size must be 1..{MAX_BATCH_SIZE} (got {size})")
    bound = settings.max_queued_batches if max_queued is None else max_queued
    if bound < 1:
        raise TileclassError(f"--max-queued must be at least 1 (got {bound})")
    request = _request(tile_root, model, zoom, bbox, geojson, scheme, layout, size, force)
    if dry_run:
        from producer.enqueue import plan

        with walk_progress(not as_json, _describe) as show:
            result = plan(request, on_progress=show)
        _print_plan(request, result, as_json)
        return
    _run(request, bound, as_json)


def _request(tile_root: Path, model: str, zoom: list[str] | None, bbox: str | None, geojson: Path | None,
             scheme: str, layout: str | None, batch_size: int, force: bool) -> EnqueueRequest:
    from core.db import session_scope
    from core.layouts import Layout
    from core.migrate import ensure_schema
    from core.region import Region, load_geojson, parse_bbox
    from core.registry import resolve_model
    from core.roots import root_name_for
    from core.settings import get_settings
    from producer.enqueue import EnqueueRequest

    settings = get_settings()
    if not tile_root.exists():
        raise TileRootError(f"tile root {str(tile_root)!r} does not exist")
    if not tile_root.is_dir():
        raise TileRootError(f"tile root {str(tile_root)!r} is not a directory")
    parsed_layout = Layout.parse(layout, scheme)
    zooms = _zooms(zoom or [])
    box = parse_bbox(bbox) if bbox is not None else None
    area = load_geojson(geojson) if geojson is not None else None
    if parsed_layout.is_plain and (zooms or box or area):
        raise TileError("--zoom, --bbox and --geojson need a layout with coordinates; 'plain' tiles have none")
    region = Region(zooms=zooms, bbox=box, area=area) if (zooms or box or area) else None
    ensure_schema()
    with session_scope() as session:
        model_hash = resolve_model(session, ref=model, settings=settings).hash
    root = tile_root.resolve()
    return EnqueueRequest(root=root, root_name=root_name_for(root, settings), layout=parsed_layout, region=region,
                          model_hash=model_hash, batch_size=batch_size, force=force)


def _zooms(values: list[str]) -> list[int]:
    from core.tiles import check_zoom

    zooms: list[int] = []
    for value in values:
        low, _, high = value.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise TileError(f"invalid zoom {value!r}: expected a number 0..24 or a range such as 15-17") from None
        if first > last:
            raise TileError(f"invalid zoom range {value!r}: the first zoom must not exceed the last")
        zooms.extend(check_zoom(z) for z in range(first, last + 1))
    return zooms


def _run(request: EnqueueRequest, max_queued: int, as_json: bool) -> None:
    from core.queue import make_app
    from core.settings import get_settings
    from producer.enqueue import Interrupted, enqueue

    app = make_app(get_settings())
    stop = threading.Event()
    try:
        with _first_sigint_sets(stop), walk_progress(not as_json, _describe) as show:
            result = enqueue(request, app=app, max_queued=max_queued, on_progress=show, stop=stop)
    except Interrupted as exc:
        where = f"job {exc.job_id} is resumable" if exc.job_id is not None else "nothing was enqueued yet"
        typer.echo(f"Interrupted after {exc.stats.enqueued} tiles: {where}; run the same command again to "
                   "continue.", err=True)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        typer.echo("Interrupted before anything was enqueued.", err=True)
        raise typer.Exit(130) from None
    _print_result(request, result, as_json)


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


def _describe(stats: EnqueueStats) -> str:
    """The progress line: tiles found, enqueued, skipped."""
    waiting = " · waiting for room in the broker" if stats.waiting else ""
    return (f"found {stats.found:,} · enqueued {stats.enqueued:,} · skipped {stats.skipped:,} · "
            f"batches {stats.batches:,}{waiting}")


def _summary(request: EnqueueRequest, result: EnqueueResult) -> dict[str, Any]:
    stats = result.stats
    return {
        "job_id": result.job_id, "resumed": result.resumed, "state": result.state, "root": request.root_name,
        "root_path": str(request.root), "layout": request.layout.name, "region": request.region_record(),
        "model": request.model_hash, "found": stats.found, "enqueued": stats.enqueued, "skipped": stats.skipped,
        "batches": stats.batches, "batch_size": request.batch_size,
        "per_zoom": {("none" if z is None else str(z)): n for z, n in sorted(stats.per_zoom.items(), key=_zkey)},
        "left_out": dict(result.report.skipped), "left_out_examples": result.report.examples,
        "ignored_names": result.report.ignored_names,
    }


def _zkey(item: tuple[int | None, int]) -> int:
    return -1 if item[0] is None else item[0]


def _warn_left_out(result: EnqueueResult) -> None:
    for reason, count in sorted(result.report.skipped.items()):
        examples = ", ".join(result.report.examples.get(reason, []))
        typer.echo(f"warning: left out {count:,} ({reason}), e.g. {examples}", err=True)


def _print_result(request: EnqueueRequest, result: EnqueueResult, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_summary(request, result)))
        return
    _warn_left_out(result)
    stats, model = result.stats, request.model_hash[:12]
    if result.job_id is None:
        if stats.found == 0:
            typer.echo(f"No tiles found under {request.root} for this layout and region: nothing enqueued.")
        else:
            typer.echo(f"All {stats.found:,} tiles found already have a result for model {model}: nothing enqueued "
                       "(--force classifies them again).")
        return
    if result.resumed and stats.found == 0 and stats.enqueued == 0 and result.state != "enqueuing":
        typer.echo(f"job {result.job_id}: already fully enqueued ({result.state}); see 'tileclass status "
                   f"{result.job_id}'")
        return
    resumed = " (resumed)" if result.resumed else ""
    typer.echo(f"job {result.job_id}{resumed}: enqueued {stats.enqueued:,} tiles in {stats.batches:,} batches; "
               f"skipped {stats.skipped:,} already classified; state {result.state}")


def _print_plan(request: EnqueueRequest, result: EnqueueResult, as_json: bool) -> None:
    summary = _summary(request, result) | {"dry_run": True}
    if as_json:
        typer.echo(json.dumps(summary))
        return
    _warn_left_out(result)
    typer.echo(f"dry run: nothing enqueued (batch size {request.batch_size})")
    typer.echo(f"{'zoom':>6} {'tiles':>12} {'batches':>9}")
    for zoom, count in summary["per_zoom"].items():
        typer.echo(f"{zoom:>6} {count:>12,} {-(-count // request.batch_size):>9,}")
    stats = result.stats
    typer.echo(f"{'total':>6} {stats.enqueued:>12,} {stats.batches:>9,}")
    typer.echo(f"found {stats.found:,} tiles; {stats.skipped:,} already have a result for model "
               f"{request.model_hash[:12]}")


def register(app: typer.Typer) -> None:
    app.command("enqueue")(enqueue)
