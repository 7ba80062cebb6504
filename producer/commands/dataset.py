"""``tileclass dataset export --job JOB --out DIR``: a job's tiles as an ImageFolder for ``tileclass train``.

It takes the tiles people corrected (``tileclass correct``), under their corrected label, and the predictions at or
above ``--min-confidence``; ``--per-class N`` keeps the same N of each class every time (corrected first, then the
most confident). Images are read from the job's source on this host. See ``producer.dataset`` for the manifest
and ``producer.dataset_folder`` for when ``--out`` may already hold something.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from core.errors import TileclassError
from producer.commands.options import Json

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.job_states import JobInfo
    from producer.dataset import ExportCounts

app = typer.Typer(help="Training data from the results: export a job's tiles as an ImageFolder for 'tileclass "
                       "train'.", no_args_is_help=True)


@app.command("export")
def export(
    job: Annotated[int, typer.Option("--job", help="The classify job whose tiles to export.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder to write: new, empty, or a previous export (recognised by its dataset.json and "
                            "manifest.csv, and replaced whole once the new one is complete; a file in it that its "
                            "manifest does not list makes the export refuse).")],
    min_confidence: Annotated[float, typer.Option(
        "--min-confidence", help="Also take predictions at least this confident (0..1); corrected tiles are always "
                                 "taken.")] = 0.9,
    per_class: Annotated[int | None, typer.Option(
        "--per-class", metavar="N", help="At most N images of each class: the corrected tiles first, then the most "
                                         "confident predictions, ties by tile, so the same N every time. Default: "
                                         "no cap.")] = None,
    as_json: Json = False,
) -> None:
    """Write JOB's corrected tiles and confident predictions as an ImageFolder, with a manifest of their origin."""
    from core.progress import progress_bar
    from core.queries import count_job_labels, iter_job_labels
    from core.settings import get_settings
    from core.sources import source_from_record
    from producer.dataset import ExportCounts, capped, write_images
    from producer.dataset_folder import MANIFEST, check_out, move_into_place, real_out, staging_folder
    from producer.session import open_session

    if per_class is not None and per_class < 1:
        raise TileclassError(f"--per-class must be 1 or more (got {per_class})")
    settings = get_settings()
    with open_session(read_only=True) as session:
        record = _classify_job(session, job)
        target = real_out(out)
        replaces = check_out(target)
        source = source_from_record(record.source)
        reader = source.reader(settings)
        rows: Any = iter_job_labels(session, job_id=job, min_confidence=min_confidence)
        if per_class is not None:
            rows = capped(rows, per_class)
        total = len(rows) if per_class is not None else count_job_labels(session, job_id=job,
                                                                         min_confidence=min_confidence)
        if not total:
            raise TileclassError(_nothing_message(job, min_confidence, ExportCounts()))
        staging = staging_folder(target)
        try:
            bar = progress_bar(not as_json, transient=False)
            task = bar.add_task(f"exporting job {job}", total=total, status="")
            with bar, (staging / MANIFEST).open("w", encoding="utf-8", newline="") as manifest:
                counts = write_images(rows, reader, staging, manifest, source_name=source.name,
                                      max_pixels=settings.worker.max_pixels, on_row=lambda n: bar.advance(task, n))
            if not counts.written:
                raise TileclassError(_nothing_message(job, min_confidence, counts))
            summary = _summary(record, counts, min_confidence=min_confidence, per_class=per_class)
            (staging / "dataset.json").write_text(json.dumps(summary, indent=2) + "\n")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    move_into_place(staging, target, replaces=replaces)
    _print(summary, counts, out, as_json)


def _classify_job(session: Session, job_id: int) -> JobInfo:
    from core.job_states import JobKind
    from core.jobs import get_job

    record = get_job(session, job_id)
    if record.kind != JobKind.CLASSIFY or not record.source:
        raise TileclassError(f"job {job_id} is a {record.kind} job: only a classify job's tiles can be exported")
    return record


def _nothing_message(job: int, min_confidence: float, counts: ExportCounts) -> str:
    unread = f"; {sum(counts.left_out.values()):,} could not be read ({_reasons(counts)})" if counts.left_out else ""
    return (f"nothing to export: no tile of job {job} is corrected or predicted at --min-confidence "
            f"{min_confidence:g} or above{unread}")


def _reasons(counts: ExportCounts) -> str:
    return ", ".join(f"{reason}: {n:,}" for reason, n in counts.left_out.most_common(3))


def _summary(record: JobInfo, counts: ExportCounts, *, min_confidence: float, per_class: int | None) -> dict[str, Any]:
    """What ``dataset.json`` records (and ``--json`` prints): where the images came from and how many."""
    return {"format": "tileclass-dataset", "version": 1, "job": record.id, "model": record.model_hash,
            "source": dict(record.source),
            "min_confidence": min_confidence, "per_class": per_class, "images": counts.written,
            "corrected": counts.corrected, "predicted": counts.predicted,
            "classes": dict(sorted(counts.per_label.items())), "left_out": dict(counts.left_out),
            "exported_at": datetime.now(UTC).isoformat()}


def _print(summary: dict[str, Any], counts: ExportCounts, out: Path, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary | {"out": str(out)}))
        return
    classes = ", ".join(f"{label} {n:,}" for label, n in sorted(counts.per_label.items()))
    typer.echo(f"wrote {counts.written:,} images of job {summary['job']} to {out} ({counts.corrected:,} corrected, "
               f"{counts.predicted:,} predicted): {classes}")
    if counts.left_out:
        typer.echo(f"warning: left out {sum(counts.left_out.values()):,} tiles that could not be read "
                   f"({_reasons(counts)})", err=True)
    typer.echo(f"next: tileclass train {out}")


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="dataset")
