"""``/api/assessments/{job}``: a job's accuracy-assessment sample for the map page's assessment mode, and the
reference labels a person gives it (``core.assessment.store``, the code of ``tileclass assess sample`` and
``tileclass assess label``).

The sample is read without any tile's map class, so the person labelling it is not biased by what the map says;
only where each tile is, its imagery and its reference label once given. Labels land in the same table as
``tileclass assess label``'s, all or nothing: an unknown class, a tile not in the sample or a tile given twice is a
400 naming it, and nothing is written.

The write needs the write authentication of ``POST /api/corrections`` (``api.auth``): the write token as a bearer
header, or the map page's cookie with its ``X-CSRF-Token``. The author is who the request says it is.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, field_validator

from api.deps import SessionDep
from core.assessment.store import ReferenceLabel, record_labels, reference_classes, sample_design, sample_tiles
from core.db import session_scope
from core.errors import TileclassError
from core.jobs import get_job
from core.tiles import Tile

router = APIRouter(prefix="/api/assessments", tags=["assessments"])
MAX_LABELS = 10_000  # labels in one request: sampling allows at most this many tiles per stratum


class AssessmentTile(BaseModel):
    """A sampled tile as the person labelling it sees it: never its map class."""

    tile: str = Field(description="z/x/y")
    z: int
    x: int
    y: int
    position: int = Field(description="1, 2, …: the order to label in (the contact sheet's numbers).")
    bounds: tuple[float, float, float, float] = Field(description="west, south, east, north (WGS84 degrees)")
    imagery: str = Field(description="URL of the tile's image in the job's source.")
    reference: str | None = Field(description="Its reference class, null until labelled.")


class AssessmentSample(BaseModel):
    """A job's assessment sample and how far its labelling is."""

    job: int
    classes: list[str] = Field(description="The classes a reference label may be: the model's, in its order.")
    tiles: list[AssessmentTile]
    labelled: int
    unlabelled: int


class LabelRequest(BaseModel):
    """One sampled tile's reference class."""

    tile: str = Field(max_length=64, description="The tile, z/x/y, as the sample gives it.")
    reference: str = Field(max_length=128, description="Its reference class: one of the sample's classes (any "
                                                       "case).")

    @field_validator("tile", "reference")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\0" in value:  # no name holds one, and PostgreSQL's text refuses it
            raise ValueError("NUL bytes are not allowed")
        return value


class LabelsRequest(BaseModel):
    """Reference labels for tiles of the job's sample; a tile labelled before gets the new label."""

    labels: list[LabelRequest] = Field(min_length=1, max_length=MAX_LABELS)
    author: str = Field("web", max_length=255, description="Who gave the labels.")

    @field_validator("author")
    @classmethod
    def _author(cls, value: str) -> str:
        if "\0" in value:
            raise ValueError("NUL bytes are not allowed")
        return value


class LabelsRecorded(BaseModel):
    """What the labels changed, and the labelling's progress after them."""

    recorded: int = Field(description="Labels that changed (a tile given the label it has is left as it was).")
    labelled: int
    unlabelled: int


@router.get("/{job_id}")
def assessment(job_id: int, session: SessionDep, request: Request) -> AssessmentSample:
    """The job's sample in labelling order, each tile's imagery and reference label if given, never its map class
    (404 when the job has no sample: ``tileclass assess sample`` draws one)."""
    get_job(session, job_id)  # first: an id no job column holds is a 400 before any query uses it
    design = sample_design(session, job_id)
    base = str(request.base_url)
    tiles = [AssessmentTile(tile=f"{t.z}/{t.x}/{t.y}", z=t.z, x=t.x, y=t.y, position=t.position,
                            bounds=Tile(t.z, t.x, t.y).bounds(), imagery=f"{base}imagery/{job_id}/{t.z}/{t.x}/{t.y}",
                            reference=t.reference) for t in sample_tiles(session, job_id)]
    return AssessmentSample(job=job_id, classes=reference_classes(session, job_id), tiles=tiles,
                            labelled=design.labelled, unlabelled=design.unlabelled)


@router.post("/{job_id}/labels")
def label(job_id: int, body: LabelsRequest) -> LabelsRecorded:
    """Record reference labels for tiles of the job's sample, all or nothing (400 naming the first problem: a class
    that is not one of the sample's, a tile not in it, a tile given twice)."""
    if not body.author.strip():
        raise TileclassError("author must not be empty")
    labels = [ReferenceLabel(Tile.parse(entry.tile), entry.reference, where=f"labels[{n}]: ")
              for n, entry in enumerate(body.labels)]
    with session_scope() as session:
        get_job(session, job_id)
        recorded = record_labels(session, job_id, labels, author=body.author)
        design = sample_design(session, job_id)
        return LabelsRecorded(recorded=recorded, labelled=design.labelled, unlabelled=design.unlabelled)
