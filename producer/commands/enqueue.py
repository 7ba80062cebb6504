"""``tileclass enqueue``: classify every tile of a region of a tile source, in batches, on the workers.

SOURCE is a folder of tile files, an ``.mbtiles`` or ``.pmtiles`` archive, a GeoTIFF/COG raster, a tile server's URL
template, or ``@NAME`` (``TILECLASS_SOURCES``); ``core.sources.spec`` tells them apart.

Prints the job id (``--json``: one JSON object on stdout). Exit codes: 0 done (also when every tile found already
has a result: running the same command again is how a job resumes), 2 bad input (also a source without a single
tile in the region, with a hint when SOURCE looks like a zoom folder of a tree), 130 interrupted (the job stays
resumable: run the same command again).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from core.errors import TileError
from core.progress import walk_progress
from producer.commands.interrupts import stoppable
from producer.commands.options import Bbox, Json, MaxQueued, check_batching, check_share
from producer.commands.printing import warn_left_out

if TYPE_CHECKING:
    from producer.enqueue import EnqueueRequest
    from producer.pipeline import PassStats


def enqueue(
    source: str = typer.Argument(
        ..., metavar="SOURCE", show_default=False,
        help="Where the tiles are: a folder, a .mbtiles or .pmtiles archive, a .tif/.tiff GeoTIFF or COG raster (its "
             "absolute path is recorded in the job), "
             "an http(s):// URL template with {z}, {x} and {y} (or {-y} for TMS rows, {q} for a quadkey, {s} with "
             "--subdomains, {env:VAR} for a secret each host reads from its environment), or @NAME, a source named "
             "in TILECLASS_SOURCES or TILECLASS_TILE_ROOTS.",
    ),
    model: str = typer.Option(..., "--model", "-m", help="Checkpoint file (.pt) or a registered model hash/prefix."),
    zoom: list[str] | None = typer.Option(
        None, "--zoom", "-z", help="Zoom level(s) 0..24; repeat it or give a range like 15-17. Default: every zoom "
                                   "of a folder or archive, the zoom closest to a raster's resolution; required for "
                                   "a tile URL."
    ),
    bbox: Bbox = None,
    geojson: Path | None = typer.Option(None, help="GeoJSON file: only tiles meeting its (multi)polygon(s)."),
    scheme: str | None = typer.Option(
        None, help="Folders: row order, xyz (y from the north; the default) or tms (gdal2tiles, y from the south). "
                   "Archives say their own."),
    layout: str | None = typer.Option(
        None, help="Folders: path template such as '{z}-{x}-{y}.jpg' or '{x}-{y}-{z}.jpg', or 'plain' for images "
                   "without coordinates. Default: '{z}/{x}/{y}.{ext}' (ext: png, jpg, jpeg, webp).",
    ),
    subdomains: str = typer.Option("", "--subdomains", help="Tile URLs: the letters {s} takes, e.g. abc."),
    probe: int = typer.Option(
        3, "--probe", min=0, help="Tile URLs: fetch this many tiles spread over the region first (with the workers' "
                                  "retries) and stop if the server is down or has none of them; 0: do not probe."),
    max_rate: float = typer.Option(
        0.0, "--max-rate", help="Tile URLs: at most this many requests per second to the server, shared by every "
                                "worker on the Redis broker; 0: no limit."),
    allow_redirect_host: list[str] | None = typer.Option(
        None, "--allow-redirect-host", metavar="HOST",
        help="Tile URLs: follow the server's redirects to this other host too (HOST, or HOST:PORT for that port "
             "only); repeat for several. Default: redirects are followed only within the URL's own host and port."),
    batch_size: int | None = typer.Option(None, help="Tiles per message (a worker task). Default: 1024."),
    max_queued: MaxQueued = None,
    min_coverage: float | None = typer.Option(
        None, "--min-coverage", metavar="F",
        help="Share 0..1 of a tile's pixels that must hold data (alpha > 0, not nodata) for it to be classified; "
             "below it the tile is empty ('partial: 6% data'). Default: TILECLASS_MIN_COVERAGE (0.5)."),
    uncertain_below: float | None = typer.Option(
        None, "--uncertain-below", metavar="P",
        help="Flag answers less confident than P (0..1) as uncertain; their label and probabilities are kept. "
             "Default: the model's own bound (its sidecar's uncertain_below), else none."),
    force: bool = typer.Option(False, "--force", help="Classify tiles again even if they have a result; new job."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count tiles and batches per zoom; enqueue nothing."),
    as_json: Json = False,
) -> None:
    """Enqueue every tile of SOURCE (within --zoom/--bbox/--geojson) for classification with --model."""
    from core.settings import get_settings
    from producer.pipeline import dry_run as count_tiles

    bound = check_batching(batch_size, max_queued, get_settings().max_queued_batches)
    check_share("--min-coverage", min_coverage)
    check_share("--uncertain-below", uncertain_below)
    request = _request(source, model, zoom, bbox, geojson, scheme, layout, batch_size, force, register=not dry_run,
                       url_options=(subdomains, max_rate, 0 if dry_run else probe, tuple(allow_redirect_host or ())),
                       bounds=(min_coverage, uncertain_below))
    if dry_run:
        with walk_progress(not as_json, _describe) as show:
            stats = count_tiles(request.target, on_progress=show, skip_classified=not request.force)
        _print_dry_run(request, stats, as_json)
        return
    _run(request, bound, as_json)


def _request(spec: str, model: str, zoom: list[str] | None, bbox: str | None, geojson: Path | None,
             scheme: str | None, layout: str | None, batch_size: int | None, force: bool, *,
             register: bool, url_options: tuple[str, float, int, tuple[str, ...]] = ("", 0.0, 0, ()),
             bounds: tuple[float | None, float | None] = (None, None)) -> EnqueueRequest:
    """The request the options describe, checked; a tile server is probed (``url_options``: subdomains, rate,
    probes, other hosts its redirects may go to) before anything is registered or enqueued. ``bounds``
    (``--min-coverage``, ``--uncertain-below``) are settled here, defaults included, and recorded in the job."""
    from core.bbox import BBox
    from core.jobs import JobBounds
    from core.models.lookups import model_uncertain_below
    from core.models.registry import resolve_model
    from core.region import Region, load_geojson
    from core.settings import get_settings
    from core.sources.layouts import Layout
    from core.sources.spec import source_for
    from core.tiles import parse_zooms
    from producer.enqueue import EnqueueRequest
    from producer.pipeline import DEFAULT_BATCH_SIZE, Target
    from producer.session import open_session

    settings = get_settings()
    subdomains, max_rate, probes, redirect_hosts = url_options
    given = layout is not None or scheme is not None
    source = source_for(spec, layout=Layout.parse(layout, scheme or "xyz") if given else None, settings=settings,
                        subdomains=subdomains, max_rate=max_rate, redirect_hosts=redirect_hosts)
    zooms = parse_zooms(zoom or [])
    box = BBox.parse(bbox) if bbox is not None else None
    area = load_geojson(geojson) if geojson is not None else None
    region = Region(zooms=zooms, bbox=box, area=area) if (zooms or box or area) else None
    plan = source.for_enqueue(region, settings=settings, probes=probes)  # the source kind's own rules
    if plan.note is not None:
        typer.echo(plan.note, err=True)
    region = plan.region
    with open_session() as session:
        model_hash = resolve_model(session, ref=model, settings=settings, register=register)
        min_coverage, uncertain_below = bounds
        settled = JobBounds(settings.min_coverage if min_coverage is None else min_coverage,
                            model_uncertain_below(session, model_hash=model_hash) if uncertain_below is None
                            else uncertain_below)
    return EnqueueRequest(Target(source, region, model_hash, batch_size or DEFAULT_BATCH_SIZE), force=force,
                          bounds=settled)


def _run(request: EnqueueRequest, max_queued: int, as_json: bool) -> None:
    from core.celery_app import connected_app
    from producer.enqueue import enqueue

    with stoppable() as stop, walk_progress(not as_json, _describe) as show:
        result = enqueue(request, app=connected_app(), max_queued=max_queued, on_progress=show, stop=stop)
    summary = _summary(request, result.stats) | {"job_id": result.job_id, "resumed": result.resumed,
                                                 "state": result.state}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        warn_left_out(result.stats.report)
    if result.job_id is None:
        _fail_if_nothing_found(request, result.stats)
    if not as_json:
        typer.echo(_outcome_line(request, summary))


def _describe(stats: PassStats) -> str:
    """The progress line: tiles found, enqueued, skipped."""
    waiting = " · waiting for room in the broker" if stats.waiting else ""
    return (f"found {stats.found:,} · enqueued {stats.enqueued:,} · skipped {stats.skipped:,} · "
            f"batches {stats.batches:,}{waiting}")


def _summary(request: EnqueueRequest, stats: PassStats) -> dict[str, Any]:
    target = request.target
    return {
        "root": target.source.name, "root_path": target.source.path, "layout": target.source.info().layout,
        "source": target.source.to_record(), "region": target.region_record(), "model": target.model_hash,
        "found": stats.found, "enqueued": stats.enqueued, "skipped": stats.skipped, "batches": stats.batches,
        "batch_size": target.batch_size,
        "per_zoom": {("none" if z is None else str(z)): n for z, n in sorted(stats.per_zoom.items(), key=_zkey)},
        "left_out": dict(stats.report.skipped), "left_out_examples": stats.report.examples,
        "ignored_names": stats.report.ignored_names,
        "min_coverage": request.bounds.min_coverage, "uncertain_below": request.bounds.uncertain_below,
    }


def _zkey(item: tuple[int | None, int]) -> int:
    return -1 if item[0] is None else item[0]


def _outcome_line(request: EnqueueRequest, summary: dict[str, Any]) -> str:
    job, model = summary["job_id"], request.target.model_hash[:12]
    if job is None:
        return (f"All {summary['found']:,} tiles found already have a result for model {model}: nothing enqueued "
                "(--force classifies them again).")
    if summary["resumed"] and summary["found"] == 0 and summary["enqueued"] == 0 and summary["state"] != "enqueuing":
        return f"job {job}: already fully enqueued ({summary['state']}); see 'tileclass status {job}'"
    resumed = " (resumed)" if summary["resumed"] else ""
    return (f"job {job}{resumed}: enqueued {summary['enqueued']:,} tiles in {summary['batches']:,} batches; "
            f"skipped {summary['skipped']:,} already classified; state {summary['state']}")


def _print_dry_run(request: EnqueueRequest, stats: PassStats, as_json: bool) -> None:
    summary = _summary(request, stats) | {"job_id": None, "resumed": False, "state": None, "dry_run": True}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        warn_left_out(stats.report)
    _fail_if_nothing_found(request, stats)
    if as_json:
        return
    size = request.target.batch_size
    typer.echo(f"dry run: nothing enqueued (batch size {size})")
    typer.echo(f"{'zoom':>6} {'tiles':>12} {'batches':>9}")
    for zoom, count in summary["per_zoom"].items():
        typer.echo(f"{zoom:>6} {count:>12,} {-(-count // size):>9,}")
    typer.echo(f"{'total':>6} {stats.enqueued:>12,} {stats.batches:>9,}")
    typer.echo(f"found {stats.found:,} tiles; {stats.skipped:,} already have a result for model "
               f"{request.target.model_hash[:12]}")


def _fail_if_nothing_found(request: EnqueueRequest, stats: PassStats) -> None:
    """A source without a single tile (in the region) is a mistake to name, not a job done: ``TileError`` in the
    source's words (a folder says which names it looked for, or where its tree's root is). Tiles found that all have
    a result already are not: that is a rerun, the documented way to resume."""
    if not stats.found:
        raise TileError(request.target.source.nothing_found(request.target.region))


def register(app: typer.Typer) -> None:
    app.command("enqueue")(enqueue)
