"""``tileclass assess``: how good a job's map is, from a probability sample of reference labels (issue 28).

``assess sample JOB --per-class N --seed S --out DIR`` draws and records a stratified random sample of the job's
classified tiles (``core.assessment.store``) and writes ``DIR/index.html`` (the tiles' imagery, without the map's
classes) and ``DIR/sample.csv`` (``z,x,y,reference``, reference empty). ``assess label JOB FILE.csv`` records the
filled-in references; ``assess report JOB`` estimates the error matrix, accuracies and error-adjusted areas from
them (``core.assessment.estimators``). ``assess estimate`` runs the same estimator on an error matrix from
elsewhere (``producer.commands.assess_estimate``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from core.errors import TileclassError
from producer.commands import assess_estimate
from producer.commands.options import Json

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.assessment.store import SampleDesign

app = typer.Typer(help="Accuracy assessment of a job's map: draw a sample, label it, report accuracies and "
                       "error-adjusted areas with 95% intervals.", no_args_is_help=True)

JobArgument = Annotated[int, typer.Argument(metavar="JOB", help="The classify job whose map is assessed.")]
DEFAULT_PER_CLASS = 50


@app.command("sample")
def sample(
    job: JobArgument,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for index.html (the tiles' imagery) and "
                                                          "sample.csv (fill in its reference column).")],
    per_class: Annotated[int | None, typer.Option(
        "--per-class", metavar="N", help=f"N tiles from every map class (default {DEFAULT_PER_CLASS}).")] = None,
    proportional: Annotated[int | None, typer.Option(
        "--proportional", metavar="N", help="Instead: N tiles in all, shared in proportion to the classes' mapped "
                                            "areas (at least 2 per class).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random draw: the same seed, the same sample.")] = 0,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Draw a new sample though the job has one: its reference labels are discarded.")] = False,
    as_json: Json = False,
) -> None:
    """Draw and record a stratified random sample of JOB's tiles; write its contact sheet and CSV to --out."""
    from core.assessment.files import write_sample_csv
    from core.assessment.store import draw_sample, reference_classes, sample_tiles
    from core.jobs import get_job
    from core.settings import get_settings
    from core.sources import source_from_record
    from producer.assessment_sheet import write_sheet
    from producer.session import open_session

    if per_class is not None and proportional is not None:
        raise TileclassError("give either --per-class N or --proportional N, not both")
    if per_class is None and proportional is None:
        per_class = DEFAULT_PER_CLASS
    settings = get_settings()
    with open_session() as session:
        _check_out(out, _recorded(session, job))
        design = draw_sample(session, job, per_class=per_class, proportional=proportional, seed=seed,
                             replace=replace)
        tiles, classes = sample_tiles(session, job), reference_classes(session, job)
        record = get_job(session, job)
    out.mkdir(parents=True, exist_ok=True)
    reader = source_from_record(record.source).reader(settings)
    unreadable = write_sheet(out, tiles, reader, job_id=job, classes=classes, max_pixels=settings.worker.max_pixels)
    write_sample_csv(out / "sample.csv", tiles)
    if as_json:
        typer.echo(json.dumps(_design_dict(design) | {"out": str(out), "unreadable": unreadable}))
        return
    _print_design(design)
    if record.state in ("enqueuing", "queued"):
        typer.echo(f"warning: job {job} is still {record.state}: the sample is of the tiles classified so far, and "
                   "stays so (--replace draws again once it is done)", err=True)
    typer.echo(f"wrote {out / 'index.html'} (the tiles' imagery, without the map's classes) and {out / 'sample.csv'}")
    if unreadable:
        typer.echo(f"warning: {unreadable} of the sample's tiles could not be read from the job's source here",
                   err=True)
    typer.echo(f"next: fill in the reference column of {out / 'sample.csv'} (one of {', '.join(classes)}), then "
               f"tileclass assess label {job} {out / 'sample.csv'}")


def _recorded(session: Session, job: int) -> dict[tuple[int, int, int], str | None]:
    """The recorded reference labels of JOB's sample, if it has one."""
    from core.assessment.store import sample_tiles
    from core.errors import NotFoundError
    from core.jobs import check_job_id

    check_job_id(job)
    try:
        return {(t.z, t.x, t.y): t.reference for t in sample_tiles(session, job)}
    except NotFoundError:
        return {}


def _check_out(out: Path, recorded: dict[tuple[int, int, int], str | None]) -> None:
    """Refuse to overwrite a sample.csv holding reference labels that are not recorded yet."""
    from core.assessment.files import read_labels

    existing = out / "sample.csv"
    if out.exists() and not out.is_dir():
        raise TileclassError(f"--out {str(out)!r} is a file, not a folder")
    if not existing.is_file():
        return
    try:
        labels = read_labels(existing)
    except TileclassError:
        labels = []  # not a sample file we can read: it holds no labels of ours
    pending = [label for label in labels if (recorded.get(label.tile.xyz()) or "").casefold()
               != label.reference.strip().casefold()]
    if pending:
        raise TileclassError(f"{existing} holds {len(pending)} reference label{'s' if len(pending) != 1 else ''} not "
                             f"recorded yet (first: {pending[0].where.rstrip(': ')}): record them with 'tileclass "
                             "assess label', or pick another --out")


@app.command("label")
def label(
    job: JobArgument,
    file: Annotated[Path, typer.Argument(metavar="FILE.csv", help="The sample's CSV with its reference column "
                                                                  "filled in (blank rows are left unlabelled).")],
    author: Annotated[str | None, typer.Option(
        "--author", help="Who labelled them. Default: the operating system's user name ($USER).")] = None,
    as_json: Json = False,
) -> None:
    """Record reference labels for JOB's sample from a filled-in sample.csv (a bad row records nothing)."""
    from core.assessment.files import read_labels
    from core.assessment.store import record_labels, sample_design
    from core.corrections import default_author
    from producer.session import open_session

    who = author if author is not None else default_author()
    labels = read_labels(file)
    with open_session() as session:
        recorded = record_labels(session, job, labels, author=who)
        design = sample_design(session, job)
    if as_json:
        typer.echo(json.dumps({"job": job, "recorded": recorded, "unchanged": len(labels) - recorded,
                               "labelled": design.labelled, "unlabelled": design.unlabelled, "author": who}))
        return
    same = f" ({len(labels) - recorded} already had that label)" if len(labels) > recorded else ""
    typer.echo(f"recorded {recorded} reference label{'s' if recorded != 1 else ''} for job {job} by {who}{same}; "
               f"{design.labelled} of {design.sample_size} sample tiles labelled, {design.unlabelled} to go")
    if not design.unlabelled:
        typer.echo(f"next: tileclass assess report {job}")


@app.command("report")
def report(
    job: JobArgument,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Also write assessment.json and areas.png (mapped vs. estimated area) here.")] = None,
    as_json: Json = False,
) -> None:
    """Error matrix, accuracies and error-adjusted areas (km²) with 95% intervals, from JOB's labelled sample."""
    from core.assessment.estimators import estimate
    from core.assessment.store import labelled_units, reference_classes, sample_design
    from producer.session import open_session

    with open_session(read_only=True) as session:
        design = sample_design(session, job)
        sample = labelled_units(session, job)
        classes = reference_classes(session, job)
    _check_labelled(job, design, sample.units)
    result = estimate(sample.units, sample.mapped_areas, classes=classes)
    document = result.as_dict() | {"job": job, "unit": "km2", "sample": _design_dict(design)}
    if out is not None:
        from producer.assessment_plot import plot_areas

        out.mkdir(parents=True, exist_ok=True)
        (out / "assessment.json").write_text(json.dumps(document, indent=2) + "\n")
        plot_areas(result, out / "areas.png", "km²")
    if as_json:
        typer.echo(json.dumps(document))
        return
    typer.echo(f"job {job}: {design.labelled} of {design.sample_size} sample tiles labelled"
               + (f", {design.unlabelled} still unlabelled" if design.unlabelled else ""))
    assess_estimate.print_assessment(result, "km²")
    if out is not None:
        typer.echo(f"wrote {out / 'assessment.json'} and {out / 'areas.png'}")


def _check_labelled(job: int, design: SampleDesign, units: list[Any]) -> None:
    """Refuse, naming the stratum, while a stratum has fewer than 2 labelled tiles (no variance without them)."""
    from core.assessment.sampling import MIN_PER_STRATUM

    labelled: dict[str, int] = {}
    for unit in units:
        labelled[unit.stratum] = labelled.get(unit.stratum, 0) + 1
    for stratum in design.strata:
        if labelled.get(stratum.name, 0) < MIN_PER_STRATUM:
            raise TileclassError(
                f"map class {stratum.name} has {labelled.get(stratum.name, 0)} labelled sample tiles of "
                f"{stratum.sample_size}: a report needs at least {MIN_PER_STRATUM} per class ({design.unlabelled} "
                f"sample tiles are still unlabelled: tileclass assess label {job} FILE.csv)")


def _design_dict(design: SampleDesign) -> dict[str, Any]:
    return {"job": design.job_id, "seed": design.seed, "allocation": design.allocation,
            "requested": design.requested, "size": design.sample_size, "labelled": design.labelled,
            "unlabelled": design.unlabelled, "drawn_at": design.created_at.isoformat(),
            "strata": {s.name: {"mapped_area_km2": s.mapped_area_km2, "tiles": s.tile_count,
                                "sample_size": s.sample_size} for s in design.strata}}


def _print_design(design: SampleDesign) -> None:
    how = (f"{design.requested} per class" if design.allocation == "per_class"
           else f"{design.requested} in proportion to area")
    typer.echo(f"job {design.job_id}: sample of {design.sample_size} tiles ({how}, seed {design.seed}), drawn "
               f"{design.created_at:%Y-%m-%d %H:%M} UTC; {design.labelled} labelled")
    width = max([len("class"), *(len(s.name) for s in design.strata)])
    typer.echo(f"  {'class':<{width}}  {'tiles':>9}  {'mapped km²':>12}  {'sample':>6}")
    for s in design.strata:
        typer.echo(f"  {s.name:<{width}}  {s.tile_count:>9,}  {s.mapped_area_km2:>12,.3f}  {s.sample_size:>6}")


app.command("estimate")(assess_estimate.estimate)  # after sample, label and report: the order --help lists them


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="assess")
