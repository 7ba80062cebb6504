"""``tileclass vectorize JOB --out FILE``: a job's tiles merged into polygons for a GIS (issue 29, part 1).

Edge-adjacent tiles of one class (or, with ``--groups``, one group) become one polygon, holes kept; tiles that only
touch at a corner stay apart. Uncertain tiles (less confident than the job's ``--uncertain-below``) are left out, or
form the class ``uncertain`` with ``--keep-uncertain``; empty tiles are never part of a polygon. The work is
``core.vectorize`` (in blocks of the tile grid, so memory stays bounded), the file ``core.polygon_files``. Needs
the ``raster`` extra (rasterio, shapely, pyogrio).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.errors import TileclassError


def vectorize(
    job: Annotated[int, typer.Argument(help="Job id whose results to merge into polygons.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write: .gpkg, .fgb or .geojson.")],
    fmt: Annotated[str | None, typer.Option(
        "--format", "-f", help="gpkg, fgb or geojson. Default: from FILE's suffix.")] = None,
    groups: Annotated[str | None, typer.Option(
        "--groups", metavar="NAME", help="A class grouping of the job's model ('tileclass groups add'): merge tiles "
                                         "of one group, not one class.")] = None,
    min_area: Annotated[float, typer.Option(
        "--min-area", metavar="M2", help="Drop polygons smaller than this many square metres.")] = 0.0,
    keep_uncertain: Annotated[bool, typer.Option(
        "--keep-uncertain", help="Uncertain tiles form their own class 'uncertain', not left out.")] = False,
    block: Annotated[int, typer.Option(
        "--block", help="Tiles per side of the blocks the grid is read in (memory grows with its square).")] = 1024,
) -> None:
    """Merge a job's edge-adjacent tiles of one class into polygons (EPSG:4326) in a GeoPackage, FlatGeobuf or
    GeoJSON file."""
    from core.polygon_files import check_extra, polygon_format

    check_extra()
    kind = polygon_format(out, fmt)
    if not out.parent.is_dir():
        raise TileclassError(f"cannot write {str(out)!r}: folder {str(out.parent)!r} does not exist")
    if not min_area >= 0:  # NaN too
        raise TileclassError(f"--min-area must be 0 or more square metres (got {min_area})")
    if not 2 <= block <= 8192:
        raise TileclassError(f"--block must be 2..8192 tiles (got {block})")
    written = _run(job, out, kind=kind, groups=groups, min_area=min_area, keep_uncertain=keep_uncertain, block=block)
    typer.echo(f"wrote {written:,} polygons of job {job} to {out}")


def _run(job: int, out: Path, *, kind: str, groups: str | None, min_area: float, keep_uncertain: bool,
         block: int) -> int:
    from core.class_groups import load_grouping
    from core.polygon_files import write_polygons
    from core.queries import select_results
    from core.vectorize import VectorizeOptions, vectorize_job
    from producer.session import open_session

    with open_session(read_only=True) as session:
        selection = select_results(session, job_id=job)
        group_of = None
        if groups is not None:
            group_of = load_grouping(session, groups, model_hash=selection.model_hash).group_of
        options = VectorizeOptions(block=block, keep_uncertain=keep_uncertain, min_area_m2=min_area,
                                   group_of=group_of)
        polygons = vectorize_job(session, selection=selection, options=options)
        return write_polygons(polygons, out, fmt=kind, label_field="group" if groups else "class")


def register(app: typer.Typer) -> None:
    app.command("vectorize")(vectorize)
