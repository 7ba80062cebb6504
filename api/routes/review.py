"""``/api/jobs/{id}/review``: a job's least confident answers not yet reviewed, a page at a time, each with its
imagery and the model's top classes: the map page's review queue (``core.queries.review``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.deps import SessionDep
from core.jobs import get_job
from core.models.lookups import find_model
from core.queries.review import MAX_PAGE, ReviewCursor, review_queue
from core.queries.types import TileAnswer

router = APIRouter(prefix="/api/jobs", tags=["review"])
TOP = 3  # the model's top classes shown with each answer


class ClassProbability(BaseModel):
    label: str
    probability: float


class ReviewAnswer(BaseModel):
    """One answer to review: the tile, where it is, what the model said and where its imagery is."""

    tile: str = Field(description="z/x/y")
    z: int
    x: int
    y: int
    bounds: tuple[float, float, float, float] = Field(description="west, south, east, north (WGS84 degrees)")
    label: str
    confidence: float
    uncertain: bool
    coverage: float | None
    top: list[ClassProbability] = Field(description=f"The model's {TOP} most probable classes.")
    imagery: str = Field(description="URL of the tile's image in the job's source.")
    classified_at: datetime


class ReviewQueue(BaseModel):
    """A page of the queue, least confident first."""

    job: int
    model: str | None
    classes: list[str] = Field(description="The model's classes, in its order: the ones a correction may pick.")
    answers: list[ReviewAnswer]
    next: str | None = Field(description="Pass as 'after' for the next page; null at the end of the queue.")


@router.get("/{job_id}/review")
def review(job_id: int, session: SessionDep, request: Request,
           limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Answers per page.")] = 20,
           after: Annotated[str | None, Query(max_length=64, description="The 'next' of the page before.")] = None,
           ) -> ReviewQueue:
    """The job's least confident answers first, leaving out tiles corrected since their result (``tileclass
    correct`` or ``POST /api/corrections``)."""
    job = get_job(session, job_id)
    page = review_queue(session, job_id=job_id, limit=limit,
                        after=ReviewCursor.parse(after) if after is not None else None)
    classes = list(find_model(session, ref=job.model_hash).class_names) if job.model_hash else []
    base = str(request.base_url)
    return ReviewQueue(job=job_id, model=job.model_hash, classes=classes,
                       answers=[_answer(answer, job_id, base) for answer in page.answers],
                       next=str(page.next) if page.next is not None else None)


def _answer(answer: TileAnswer, job_id: int, base_url: str) -> ReviewAnswer:
    tile = answer.tile
    z, x, y = tile.xyz()
    west, south, east, north = tile.bounds()
    return ReviewAnswer(tile=str(tile), z=z, x=x, y=y, bounds=(west, south, east, north),
                        label=answer.label, confidence=answer.confidence, uncertain=answer.uncertain,
                        coverage=answer.coverage,
                        top=[ClassProbability(label=label, probability=p) for label, p in answer.top(TOP)],
                        imagery=f"{base_url}imagery/{job_id}/{z}/{x}/{y}",
                        classified_at=answer.classified_at)
