"""What routes are given: a read-only session on the configured database, and the server's configuration."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.config import ServeConfig
from core.db import session_scope
from core.errors import TileclassError


def read_session(request: Request) -> Iterator[Session]:
    """A read-only session for one request (on SQLite it takes no write lock, so workers never wait for it).

    A request with a NUL byte in a path segment or query value is refused first, as malformed (400): no name, label
    or reason holds one, and PostgreSQL's text refuses it deep inside a query (a 500 otherwise).
    """
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        if isinstance(value, str) and "\0" in value:
            raise TileclassError(f"{name}: NUL bytes are not allowed (got {value!r})")
    with session_scope(read_only=True) as session:
        yield session


def serve_config(request: Request) -> ServeConfig:
    config: ServeConfig = request.app.state.config
    return config


SessionDep = Annotated[Session, Depends(read_session)]
ConfigDep = Annotated[ServeConfig, Depends(serve_config)]
