"""The selection a command reads: a job, or a bbox at a zoom, as JOB, ``--bbox`` and ``--zoom`` name it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.bbox import BBox
from core.queries import Selection, select_results


def selection_for(session: Session, *, job: int | None, box: str | None, zoom: int | None,
                  model: str | None) -> Selection:
    """Parse the options and settle which results (and which model) they name."""
    region = BBox.parse(box) if box is not None else None
    return select_results(session, job_id=job, bbox=region, zoom=zoom, model_ref=model)
