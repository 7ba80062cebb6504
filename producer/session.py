"""The session a command works in: the configured database, its schema created first when it is a fresh file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from core.db import session_scope
from core.migrate import ensure_schema


@contextmanager
def open_session(*, read_only: bool = False) -> Iterator[Session]:
    """A session on ``TILECLASS_DATABASE_URL`` that commits on success (``read_only``: takes no write lock)."""
    ensure_schema()
    with session_scope(read_only=read_only) as session:
        yield session
