"""``/imagery/{job}/{z}/{x}/{y}``: the job's own tiles for the map's base layer (see ``api.imagery``), read on the
imagery threads (``api.imagery_gate``), never on the thread pool the other routes share."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request, Response

from api.deps import SessionDep
from api.imagery import ImageryReaders, OutsideTheJob
from api.imagery_gate import ImageryGate
from core.tiles import Tile

router = APIRouter(prefix="/imagery", tags=["imagery"])


@router.get("/{job_id}/{z}/{x}/{y}", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
                       204: {"description": "Outside the job's extent or zooms: no imagery there."},
                       503: {"description": "Its tile server is down or too slow, or every imagery slot is busy: "
                                            "try again after Retry-After seconds."}})
async def imagery(job_id: int, z: int, x: int, y: int, request: Request, session: SessionDep) -> Response:
    """The job's image of one tile, read from its source; empty (204) outside its extent, 404 where it has none,
    503 (with Retry-After) while its tile server is down or every imagery slot is busy."""
    readers: ImageryReaders = request.app.state.imagery
    gate: ImageryGate = request.app.state.imagery_gate
    try:
        picture = await gate.run(partial(readers.picture, session, job_id=job_id, tile=Tile.checked(z, x, y)))
    except OutsideTheJob:  # a map or GIS client drawing around the job: nothing there, which is no error
        return Response(status_code=204, headers={"Cache-Control": "private, max-age=300"})
    # Imagery changes rarely and is the job's own: let the browser keep it for a while.
    return Response(picture.data, media_type=picture.media_type,
                    headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"})
