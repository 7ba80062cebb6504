"""The command line's one-line messages as HTTP answers: a malformed request is 400, something unknown 404.

Every error body is ``{"detail": "<one line>"}``: the same line ``tileclass`` would print, so a script reads the
same words from either. An unreachable database is 503 with the URL's password hidden.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError

from core.db import unreachable_message
from core.errors import NotFoundError, TileclassError


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(TileclassError, _bad_request)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(InterfaceError, _database_down)


def detail(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": message, **extra}, status_code=status)


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
