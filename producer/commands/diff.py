"""``tileclass diff JOB_A JOB_B``: what changed between two jobs over the same tiles (issue 29, part 3).

Compares the tiles both jobs classified: a transition matrix in tiles and km² (WGS84), confident changes apart
from uncertain ones (either answer uncertain by its own job's ``--uncertain-below``, or either tile partial).
Two models over the same imagery give a disagreement map. ``--out DIR`` writes the changed tiles as a GeoPackage
and a GeoJSON file (``core.change_files``) and the report as ``diff.json``. The work is ``core.diff``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core.errors import TileclassError
from producer.commands.options import Json

if TYPE_CHECKING:
    from core.diff import DiffReport, DiffSide


def _km2(area: float) -> str:
    return f"{area:,.1f}" if area >= 100 else f"{area:,.3g}" if area else "0"


def _side(side: DiffSide) -> str:
    named = f", grouping {side.grouping.name}" if side.grouping else ""
    return f"job {side.job_id} (model {side.model.hash[:12]}{named})"


def _text(report: DiffReport) -> list[str]:
    document = report.as_dict()
    lines = [f"Diff of {_side(report.a)} -> {_side(report.b)}, zoom {', '.join(map(str, report.a.zooms))}: "
             f"{report.compared:,} tiles classified by both"]
    for key, name in (("unchanged", "unchanged"), ("changed", "changed"), ("uncertain_change", "uncertain change")):
        part = document[key]
        lines.append(f"  {name:<17} {part['tiles']:>10,} tiles  {_km2(part['area_km2']):>12} km²")
    lines.append(f"  only in job {report.a.job_id}: {report.only_a:,} tiles; only in job {report.b.job_id}: "
                 f"{report.only_b:,} tiles (not compared)")
    if report.compared == 0 and report.a.model.hash == report.b.model.hash:
        # A tile keeps one result per model: where both jobs classified it, the later one holds it.
        lines.append("  both jobs ran the same model, whose results are kept once per tile (the later job's): "
                     "compare two models, or two dates once results hold an imagery vintage")
    lines += _matrix(report)
    if report.changes:
        width = max(len(f"{t.before} -> {t.after}") for t in report.changes)
        lines.append("  changes (confident; uncertain):")
        lines += [f"    {f'{t.before} -> {t.after}':<{width}}  {t.tiles:>10,} tiles {_km2(t.area_km2):>10} km²;"
                  f"  {t.uncertain_tiles:>8,} tiles {_km2(t.uncertain_km2):>10} km²" for t in report.changes]
    return lines


def _matrix(report: DiffReport) -> list[str]:
    """The transition matrix in tiles (confident and uncertain together), rows job A's, columns job B's."""
    rows = sorted({t.before for t in report.transitions})
    columns = sorted({t.after for t in report.transitions})
    cells = {(t.before, t.after): t.tiles + t.uncertain_tiles for t in report.transitions}
    corner = "A \\ B"
    first = max([len(name) for name in rows] + [len(corner)])
    width = max([len(name) for name in columns] + [8])
    lines = [f"  transitions in tiles (rows: job {report.a.job_id}, columns: job {report.b.job_id}):",
             f"    {corner:<{first}}" + "".join(f"  {name:>{width}}" for name in columns)]
    lines += [f"    {row:<{first}}" + "".join(f"  {cells.get((row, col), 0):>{width},}" for col in columns)
              for row in rows]
    return lines


def diff(
    job_a: Annotated[int, typer.Argument(help="The job to compare from (e.g. the earlier date).")],
    job_b: Annotated[int, typer.Argument(help="The job to compare to (e.g. the later date).")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", metavar="DIR", help="Folder to write changes.gpkg, changes.geojson and diff.json to "
                                           "(made if missing; its parent must exist).")] = None,
    groups: Annotated[str | None, typer.Option(
        "--groups", metavar="NAME[,NAME_B]", help="Compare groups, not classes: a grouping naming both models' "
                                                  "classes, or one per job ('tileclass groups add').")] = None,
    as_json: Json = False,
) -> None:
    """Compare the tiles two jobs both classified: a transition matrix (tiles, km²), changes, uncertain changes."""
    if out is not None:
        from core.change_files import check_extra

        check_extra()
        if not out.parent.is_dir():
            raise TileclassError(f"cannot write to {str(out)!r}: folder {str(out.parent)!r} does not exist")
        if out.exists() and not out.is_dir():
            raise TileclassError(f"--out {str(out)!r} is a file: give a folder")
    names = tuple(name.strip() for name in groups.split(",")) if groups is not None else ()
    report = _run(job_a, job_b, names, out)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo("\n".join(_text(report)))
        if out is not None:
            typer.echo(f"wrote the changed tiles to {out / 'changes.gpkg'} and {out / 'changes.geojson'}")


def _run(job_a: int, job_b: int, groups: tuple[str, ...], out: Path | None) -> DiffReport:
    from core.diff import diff_jobs, diff_sides, iter_changes
    from producer.session import open_session

    with open_session(read_only=True) as session:
        a, b = diff_sides(session, job_a, job_b, groups=groups)
        report = diff_jobs(session, a, b)
        if out is not None:
            from core.change_files import write_changes

            out.mkdir(exist_ok=True)
            write_changes(iter_changes(session, a, b), out, grouped=bool(groups))
            (out / "diff.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
    return report


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)
