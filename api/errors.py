"""The command line's one-line messages as HTTP answers: a malformed request is 400, something unknown 404.

Every error body is ``{"detail": "<one line>"}``: the same line ``tileclass`` would print, so a script reads the
same words from either. An unreachable database is 503 with the URL's password hidden. What cannot answer now but
may later (a job's tile server down or too slow, every imagery slot busy: ``Unavailable``, or any other
``HostError``) is 503 with ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError

from core.db import unreachable_message
from core.errors import HostError, NotFoundError, TileclassError

RETRY_AFTER = 30  # seconds, for a HostError that does not say


class Unavailable(TileclassError):
    """Something an answer needs cannot give it now, and may later: 503, asking to retry after ``retry_after`` s."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(Unavailable, _unavailable)
    app.add_exception_handler(HostError, _unavailable)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(TileclassError, _bad_request)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(InterfaceError, _database_down)


def detail(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": message, **extra}, status_code=status)


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    retry_after = exc.retry_after if isinstance(exc, Unavailable) else RETRY_AFTER
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(retry_after)})


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return detail(404, str(exc))


async def _bad_request(_: Request, exc: Exception) -> JSONResponse:
    return detail(400, str(exc))


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return detail(400, one_line(exc.errors()))


def one_line(errors: Any) -> str:
    """The first of FastAPI's validation errors as a sentence: which parameter, what is wrong, what was given."""
    first = next(iter(errors), None)
    if first is None:
        return "malformed request"
    where = [str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body")]
    name = ".".join(where) or "request"
    given = first.get("input")
    shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
    return f"{name}: {str(first.get('msg', 'invalid')).removeprefix('Value error, ')}{shown}"


async def _database_down(_: Request, exc: Exception) -> JSONResponse:
    return detail(503, unreachable_message(exc))
