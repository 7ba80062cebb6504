"""What routes are given: a read-only session on the configured database, and the server's configuration."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.config import ServeConfig
from core.db import session_scope


def read_session() -> Iterator[Session]:
    """A read-only session for one request (on SQLite it takes no write lock, so workers never wait for it)."""
    with session_scope(read_only=True) as session:
        yield session


def serve_config(request: Request) -> ServeConfig:
    config: ServeConfig = request.app.state.config
    return config


SessionDep = Annotated[Session, Depends(read_session)]
ConfigDep = Annotated[ServeConfig, Depends(serve_config)]
