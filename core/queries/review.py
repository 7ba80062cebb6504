"""The review queue: a job's least confident answers, the ones most worth a person's look, in order.

A job's results with coordinates, by confidence ascending (ties by the result's row id, so the order is total and
stable), leaving out every tile that already has a correction made at or after its result (``tileclass correct``
or the web map's review: a person has looked at that answer; a correction older than the result was about an
earlier answer, so the new one is queued again). Tiles without coordinates cannot be corrected and are left out.

Pages are keyset pages: ``after`` is the ``next`` cursor of the page before, ``CONFIDENCE:ID`` of its last answer
(``repr`` of the float, exact both ways), so a page costs the same wherever it starts and answers corrected
meanwhile never shift the ones after them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from core.errors import TileclassError
from core.jobs import get_job
from core.queries.types import RESULT_COLUMNS, TileAnswer, answer_from_row
from core.schema import TileCorrection, TileResult

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class ReviewCursor:
    """Where a page of the queue starts: after the answer with this confidence and row id."""

    confidence: float
    result_id: int

    @classmethod
    def parse(cls, text: str) -> ReviewCursor:
        """A cursor from its text, ``CONFIDENCE:ID`` (a page's ``next``); ``TileclassError`` naming the form."""
        confidence, _, result_id = text.partition(":")
        try:
            return cls(float(confidence), int(result_id))
        except ValueError:
            raise TileclassError(f"after: not a review cursor (got {text!r}): pass the 'next' of the page "
                                 "before, e.g. 0.41:1234") from None

    def __str__(self) -> str:
        return f"{self.confidence!r}:{self.result_id}"


@dataclass(frozen=True, slots=True)
class ReviewPage:
    """A page of the queue: its answers, least confident first, and the cursor of the page after it (None at the
    end)."""

    answers: list[TileAnswer]
    next: ReviewCursor | None


def review_queue(session: Session, *, job_id: int, limit: int = 20, after: ReviewCursor | None = None) -> ReviewPage:
    """Job ``job_id``'s least confident answers not yet reviewed, ``limit`` of them from ``after`` on.

    ``NotFoundError`` for an unknown job; ``TileclassError`` for a ``limit`` outside 1..``MAX_PAGE``.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise TileclassError(f"limit must be within 1..{MAX_PAGE} (got {limit})")
    get_job(session, job_id)
    reviewed = exists().where(TileCorrection.z == TileResult.z, TileCorrection.x == TileResult.x,
                              TileCorrection.y == TileResult.y, TileCorrection.created_at >= TileResult.classified_at)
    stmt = (select(*RESULT_COLUMNS, TileResult.id)
            .where(TileResult.job_id == job_id, TileResult.z.is_not(None), ~reviewed)
            .order_by(TileResult.confidence, TileResult.id).limit(limit + 1))
    if after is not None:
        stmt = stmt.where(or_(TileResult.confidence > after.confidence,
                              and_(TileResult.confidence == after.confidence, TileResult.id > after.result_id)))
    rows = list(session.execute(stmt))
    answers = [answer_from_row(row[:-1]) for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return ReviewPage(answers, ReviewCursor(float(last.confidence), int(last.id)) if last is not None else None)
