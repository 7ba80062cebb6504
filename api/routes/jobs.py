"""``/api/jobs``: what ``tileclass status --json`` says, a job's failures, and what the map needs to show a job."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from api.deps import ConfigDep, SessionDep
from api.job_layers import job_layers
from api.map_schemas import JobLayers
from api.schemas import JobStatus, TileFailure
from api.streams import streamed
from core.export import failure_csv_chunks, json_array_chunks
from core.job_status import job_documents
from core.queries.failures import iter_job_failures

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.get("", response_model=list[JobStatus])
def list_jobs(session: SessionDep,
              limit: Annotated[int, Query(ge=1, le=1000, description="How many of the newest jobs.")] = 20,
              ) -> list[dict[str, Any]]:
    """The newest jobs first, each as ``tileclass status --json`` prints it."""
    return job_documents(session, limit=limit)


@router.get("/{job_id}", response_model=JobStatus)
def get_job(job_id: int, session: SessionDep) -> dict[str, Any]:
    """One job's progress, as ``tileclass status JOB --json`` prints it."""
    return job_documents(session, job_id=job_id)[0]


@router.get("/{job_id}/failures", response_model=None,
            responses={200: {"model": list[TileFailure], "content": {"text/csv; charset=utf-8": {}}}})
def job_failures(job_id: int, session: SessionDep,
                 reason: Annotated[str | None, Query(max_length=500, description="Only failures whose reason "
                                                     "contains this text (any case).")] = None,
                 format: Annotated[Literal["json", "csv"], Query(description="json (an array) or csv.")] = "json",
                 ) -> Any:
    """The job's failed tiles, oldest first, streamed: tile or path, reason, attempts and time."""
    next(iter_job_failures(session, job_id=job_id, reason=reason), None)  # an unknown job is 404 before streaming

    def pieces(stream_session: Session) -> Iterator[str]:
        failures = iter_job_failures(stream_session, job_id=job_id, reason=reason)
        if format == "csv":
            return failure_csv_chunks(failures)
        return json_array_chunks(failure.as_dict() for failure in failures)

    return streamed(pieces, fmt=format, filename=f"job-{job_id}-failures")


@router.get("/{job_id}/layers")
def layers(job_id: int, session: SessionDep, request: Request, config: ConfigDep) -> JobLayers:
    """What the map page needs to show a job: its model, zoom, extent, class colours and counts, the URL
    templates of its imagery and overlay tiles, and the basemap around them (``TILECLASS_BASEMAP_URL``, else null)."""
    return job_layers(session, job_id=job_id, base_url=str(request.base_url), basemap=config.basemap())
