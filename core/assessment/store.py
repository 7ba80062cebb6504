"""A job's accuracy-assessment sample in the database: drawn once, labelled by people, read by the estimators.

The tables (``core.schema``): ``assessments`` (one per job: its seed and allocation), ``assessment_strata`` (each
map class's mapped area and tile count when the sample was drawn, and its sample size) and ``assessment_units``
(the sampled tiles in the order a reviewer sees them, with their reference labels once given). The design is
fixed when it is drawn: a report reads the recorded strata, never the job's results as they are later.

Only labels on this sample are reference data. Corrections (``tileclass correct``) and the review queue's answers
are not: the queue picks the least confident tiles, so it is no probability sample.

Readers that show the sample to a reviewer (``sample_tiles``: the CLI's contact sheet, the web map's assessment
mode) never get a tile's map class, so the reviewer is not biased by it. A reference label must be one of the
job's model's classes (matched ignoring case, stored in the model's spelling); a batch of labels is all or
nothing (``record_labels``). Labelling a tile again replaces its label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from core.assessment import AssessmentError
from core.assessment.estimators import SampleUnit
from core.assessment.sampling import allocate, draw, strata_of
from core.db import aware
from core.errors import NotFoundError
from core.job_states import JobKind
from core.jobs import check_job_id, get_job
from core.models.lookups import get_model
from core.schema import Assessment, AssessmentStratum, AssessmentUnit, utcnow
from core.tiles import Tile


@dataclass(frozen=True)
class ReferenceLabel:
    """A person's reference class for a sampled tile; ``where`` says where it came from (``"sample.csv row 7: "``)."""

    tile: Tile
    reference: str
    where: str = ""


@dataclass(frozen=True)
class SampleTile:
    """A sampled tile as a reviewer sees it: where it is and its reference label if given; never its map class."""

    z: int
    x: int
    y: int
    position: int  # 1, 2, …: the order a reviewer labels them in
    reference: str | None


@dataclass(frozen=True)
class StratumDesign:
    """A stratum as recorded when the sample was drawn."""

    name: str
    mapped_area_km2: float
    tile_count: int
    sample_size: int


@dataclass(frozen=True)
class SampleDesign:
    """A job's recorded sample design and how far its labelling is."""

    job_id: int
    model_hash: str
    seed: int
    allocation: str  # "per_class" or "proportional"
    requested: int  # the N asked for: per class, or in total
    created_at: datetime
    strata: tuple[StratumDesign, ...]
    labelled: int

    @property
    def sample_size(self) -> int:
        return sum(stratum.sample_size for stratum in self.strata)

    @property
    def unlabelled(self) -> int:
        return self.sample_size - self.labelled


class LabelledSample(NamedTuple):
    """What the estimators take: the labelled units, each stratum's recorded mapped area, and how many are left."""

    units: list[SampleUnit]
    mapped_areas: dict[str, float]
    unlabelled: int


def draw_sample(session: Session, job_id: int, *, per_class: int | None = None, proportional: int | None = None,
                seed: int, replace: bool = False) -> SampleDesign:
    """Draw and record job ``job_id``'s stratified sample (``core.assessment.sampling``).

    Asking again with the same seed and allocation gives the recorded sample back (labels kept); another one is an
    ``AssessmentError``. ``replace`` draws anew (from the job's results as they are now) in any case, and discards
    the recorded sample and its labels.
    """
    job = get_job(session, job_id)
    if job.kind != JobKind.CLASSIFY or job.model_hash is None:
        raise AssessmentError(f"job {job_id} is a {job.kind} job: only a classify job's map can be assessed")
    allocation, requested = ("per_class", per_class) if per_class is not None else ("proportional", proportional)
    existing = session.scalar(select(Assessment).where(Assessment.job_id == job_id))
    if existing is not None and not replace:
        if (existing.seed, existing.allocation, existing.sample_size) == (seed, allocation, requested):
            return sample_design(session, job_id)
        design = sample_design(session, job_id)
        raise AssessmentError(
            f"job {job_id} already has a sample ({design.allocation.replace('_', ' ')} {design.requested}, seed "
            f"{design.seed}; {design.labelled} of {design.sample_size} labelled): --replace draws a new one and "
            "discards its labels")
    if existing is not None:
        _discard(session, existing.id)
    strata = strata_of(session, job_id=job_id)
    sizes = allocate(strata, per_class=per_class, proportional=proportional)
    units = draw(session, job_id=job_id, strata=strata, sizes=sizes, seed=seed)
    assert requested is not None
    row = Assessment(job_id=job_id, model_hash=job.model_hash, seed=seed, allocation=allocation,
                     sample_size=requested, created_at=utcnow())
    session.add(row)
    session.flush()
    session.execute(insert(AssessmentStratum), [
        {"assessment_id": row.id, "class_name": name, "mapped_area_km2": size.area_km2,
         "tile_count": size.tile_count, "sample_size": sizes[name]} for name, size in strata.items()])
    session.execute(insert(AssessmentUnit), [
        {"assessment_id": row.id, "position": position, "z": unit.z, "x": unit.x, "y": unit.y,
         "stratum": unit.stratum, "area_km2": unit.area_km2} for position, unit in enumerate(units, start=1)])
    return sample_design(session, job_id)


def _discard(session: Session, assessment_id: int) -> None:
    for table in (AssessmentUnit, AssessmentStratum):
        session.execute(delete(table).where(table.assessment_id == assessment_id))
    session.execute(delete(Assessment).where(Assessment.id == assessment_id))


def _assessment(session: Session, job_id: int) -> Assessment:
    # The id's range first: SQLite cannot bind an integer beyond 64 bits, PostgreSQL's column holds 32.
    row = session.scalar(select(Assessment).where(Assessment.job_id == check_job_id(job_id)))
    if row is None:
        get_job(session, job_id)  # NotFoundError for a job that does not exist
        raise NotFoundError(f"job {job_id} has no assessment sample: 'tileclass assess sample {job_id} --per-class 50 "
                            "--seed 1 --out DIR' draws one")
    return row


def sample_design(session: Session, job_id: int) -> SampleDesign:
    """Job ``job_id``'s recorded design (``NotFoundError`` if it has no sample)."""
    row = _assessment(session, job_id)
    strata = session.execute(select(AssessmentStratum).where(AssessmentStratum.assessment_id == row.id)
                             .order_by(AssessmentStratum.class_name)).scalars()
    labelled = session.scalar(select(func.count()).select_from(AssessmentUnit)
                              .where(AssessmentUnit.assessment_id == row.id, AssessmentUnit.reference.is_not(None)))
    return SampleDesign(job_id, row.model_hash, row.seed, row.allocation, row.sample_size, aware(row.created_at),
                        tuple(StratumDesign(s.class_name, s.mapped_area_km2, s.tile_count, s.sample_size)
                              for s in strata), int(labelled or 0))


def sample_tiles(session: Session, job_id: int) -> list[SampleTile]:
    """Job ``job_id``'s sampled tiles in review order, with their reference labels where given (no map class)."""
    row = _assessment(session, job_id)
    rows = session.execute(select(AssessmentUnit.z, AssessmentUnit.x, AssessmentUnit.y, AssessmentUnit.position,
                                  AssessmentUnit.reference)
                           .where(AssessmentUnit.assessment_id == row.id).order_by(AssessmentUnit.position))
    return [SampleTile(z, x, y, position, reference) for z, x, y, position, reference in rows]


def reference_classes(session: Session, job_id: int) -> list[str]:
    """The classes a reference label may be: the sample's model's classes, then any map class it lacks."""
    row = _assessment(session, job_id)
    model = get_model(session, model_hash=row.model_hash)
    names = list(model.class_names) if model is not None else []
    strata = session.scalars(select(AssessmentStratum.class_name)
                             .where(AssessmentStratum.assessment_id == row.id).order_by(AssessmentStratum.class_name))
    return names + [name for name in strata if name not in names]


def record_labels(session: Session, job_id: int, labels: Sequence[ReferenceLabel], *, author: str | None) -> int:
    """Record reference labels for job ``job_id``'s sampled tiles; returns how many changed (a tile given the label
    it already has keeps its author and time, so importing a file twice changes nothing).

    All or nothing: a class that is not a reference class, a tile not in the sample, or a tile given twice is an
    ``AssessmentError`` naming it (with its ``where``), and nothing is written.
    """
    row = _assessment(session, job_id)
    classes = reference_classes(session, job_id)
    spelling = {name.casefold(): name for name in classes}
    units = {(z, x, y): (position, reference) for z, x, y, position, reference in session.execute(
        select(AssessmentUnit.z, AssessmentUnit.x, AssessmentUnit.y, AssessmentUnit.position,
               AssessmentUnit.reference).where(AssessmentUnit.assessment_id == row.id))}
    seen: dict[tuple[int, int, int], str] = {}
    changes = []
    now, who = utcnow(), (author.strip()[:255] or None) if author is not None else None
    for label in labels:
        key = label.tile.xyz()
        name = spelling.get(label.reference.strip().casefold())
        if name is None:
            raise AssessmentError(f"{label.where}{label.reference!r} is not a class of job {job_id}'s model: its "
                                  f"classes are {', '.join(classes)}")
        if key not in units:
            raise AssessmentError(f"{label.where}tile {label.tile} is not in job {job_id}'s assessment sample")
        if key in seen:
            earlier = seen[key] or "earlier in the list"
            raise AssessmentError(f"{label.where}tile {label.tile} is labelled twice (also {earlier})")
        seen[key] = label.where.rstrip(": ")
        position, current = units[key]
        if current != name:
            changes.append({"assessment_id": row.id, "position": position, "reference": name, "labelled_at": now,
                            "author": who})
    if changes:
        session.execute(update(AssessmentUnit), changes)
    return len(changes)


def labelled_units(session: Session, job_id: int) -> LabelledSample:
    """Job ``job_id``'s labelled units for the estimators, the recorded mapped areas, and the unlabelled count."""
    row = _assessment(session, job_id)
    areas = {name: float(area) for name, area in session.execute(
        select(AssessmentStratum.class_name, AssessmentStratum.mapped_area_km2)
        .where(AssessmentStratum.assessment_id == row.id))}
    units, unlabelled = [], 0
    for stratum, reference, area in session.execute(
            select(AssessmentUnit.stratum, AssessmentUnit.reference, AssessmentUnit.area_km2)
            .where(AssessmentUnit.assessment_id == row.id).order_by(AssessmentUnit.position)):
        if reference is None:
            unlabelled += 1
        else:
            units.append(SampleUnit(stratum=stratum, reference=reference, area=float(area)))
    return LabelledSample(units, areas, unlabelled)
