"""``/imagery/{job}/{z}/{x}/{y}``: the job's own tiles for the map's base layer (see ``api.imagery``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.deps import SessionDep
from api.imagery import ImageryReaders
from core.tiles import Tile

router = APIRouter(prefix="/imagery", tags=["imagery"])


@router.get("/{job_id}/{z}/{x}/{y}", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}})
def imagery(job_id: int, z: int, x: int, y: int, request: Request, session: SessionDep) -> Response:
    """The job's image of one tile, read from its source; 404 outside its region or where it has none."""
    readers: ImageryReaders = request.app.state.imagery
    picture = readers.picture(session, job_id=job_id, tile=Tile.checked(z, x, y))
    # Imagery changes rarely and is the job's own: let the browser keep it for a while.
    return Response(picture.data, media_type=picture.media_type,
                    headers={"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"})
