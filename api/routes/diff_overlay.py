"""``/overlay/diff/{job_a}/{job_b}/{z}/{x}/{y}.png``: what changed between two jobs (``tileclass diff``) as an XYZ
layer at any zoom, each changed tile in its "to" class's colour, an uncertain change hatched.

The rows are ``core.diff_overlay``'s, drawn by the same grid and PNG code as a model's overlay
(``api/routes/overlay.py``, whose ETag and revalidation it shares). ``?groups=NAME`` (or ``NAME_A,NAME_B``)
compares groups, as ``diff --groups`` does. Jobs that cannot be compared are a 400, an unknown job or grouping a
404, in ``diff``'s words.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from api.deps import SessionDep
from api.overlay_png import overlay_png
from api.routes.overlay import cached_tile
from core.diff import diff_sides
from core.diff_overlay import diff_overlay_request, diff_overlay_rows
from core.queries.overlay import overlay_grid
from core.tiles import Tile

router = APIRouter(prefix="/overlay/diff", tags=["overlay"])
JobA = Annotated[int, Path(description="The job to compare from (e.g. the earlier date).")]
JobB = Annotated[int, Path(description="The job to compare to (e.g. the later date); its classes' colours.")]
Groups = Annotated[str | None, Query(description="Compare groups, not classes: a grouping naming both models' "
                                     "classes, or NAME_A,NAME_B (one per job).")]


@router.get("/{job_a}/{job_b}/{z}/{x}/{y}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}, 304: {"description": "Not modified"}})
def diff_tile(job_a: JobA, job_b: JobB, z: int, x: int, y: int, request: Request, session: SessionDep,
              groups: Groups = None) -> Response:
    """One overlay tile of the tiles whose class differs between two jobs, in job B's class colours (uncertain
    changes hatched; far out, a pixel's alpha is the share of its tiles that changed)."""
    tile = Tile.checked(z, x, y)
    names = tuple(name.strip() for name in groups.split(",")) if groups is not None else ()
    a, b = diff_sides(session, job_a, job_b, groups=names)
    wanted = diff_overlay_request(b, tile)
    body = overlay_png(overlay_grid(diff_overlay_rows(session, a, b, request=wanted), request=wanted))
    return cached_tile(body, "image/png", request)
