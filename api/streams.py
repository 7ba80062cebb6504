"""Streamed answers: text pieces made inside their own read-only session, so a response of any size is written as
its rows are read (the request's session has ended by the time the body is sent)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from core.db import session_scope

MEDIA_TYPES = {"geojson": "application/geo+json", "csv": "text/csv; charset=utf-8", "json": "application/json"}


def streamed(pieces: Callable[[Session], Iterator[str]], *, fmt: str, filename: str) -> StreamingResponse:
    """A response whose body is ``pieces(session)``, offered for download as ``filename``.``fmt``."""

    def body() -> Iterator[str]:
        with session_scope(read_only=True) as session:
            yield from pieces(session)

    return StreamingResponse(body(), media_type=MEDIA_TYPES[fmt],
                             headers={"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'})
