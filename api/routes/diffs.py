"""``/api/diffs/{job_a}/{job_b}``: what changed between two jobs, as ``tileclass diff --json`` says it, and
``/api/diffs/{job_a}/{job_b}/changes?bbox=``: the changed tiles in a box, which the map page's compare mode outlines.

Both call ``core.diff`` as the command does; ``?groups=NAME`` (or ``NAME_A,NAME_B``) compares groups. Jobs that
cannot be compared are a 400, an unknown job or grouping a 404, in ``diff``'s words.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import SessionDep
from api.diff_schemas import DiffChanges, DiffReport
from api.routes.diff_overlay import Groups, JobA, JobB
from core.bbox import BBox
from core.diff import diff_jobs, diff_sides, iter_changes

router = APIRouter(prefix="/api/diffs", tags=["diffs"])
MAX_CHANGES = 10_000


def _names(groups: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in groups.split(",")) if groups is not None else ()


@router.get("/{job_a}/{job_b}", response_model=DiffReport)
def diff(job_a: JobA, job_b: JobB, session: SessionDep, groups: Groups = None) -> dict[str, Any]:
    """The transition matrix of the tiles both jobs classified, in tiles and km², confident and uncertain changes
    apart."""
    a, b = diff_sides(session, job_a, job_b, groups=_names(groups))
    return diff_jobs(session, a, b).as_dict()


@router.get("/{job_a}/{job_b}/changes", response_model=DiffChanges)
def changes(job_a: JobA, job_b: JobB, session: SessionDep,
            bbox: Annotated[str, Query(description="The box W,S,E,N (WGS84 degrees) whose changed tiles to list.")],
            groups: Groups = None,
            limit: Annotated[int, Query(ge=1, le=MAX_CHANGES, description="At most this many tiles.")] = 2000,
            ) -> dict[str, Any]:
    """The tiles in ``bbox`` whose class (or group) differs between the jobs, at their finest common zoom."""
    a, b = diff_sides(session, job_a, job_b, groups=_names(groups))
    zoom = a.zooms[-1]
    found = [tile.as_dict() for tile in iter_changes(session, a, b, tiles=BBox.parse(bbox).tiles(zoom),
                                                     limit=limit + 1)]
    return {"job_a": job_a, "job_b": job_b, "zoom": zoom, "tiles": found[:limit], "truncated": len(found) > limit}
