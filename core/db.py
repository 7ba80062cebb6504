"""Engines and sessions, created lazily once per process (after any fork, as SQLAlchemy's pooling docs ask).

SQLite files run in WAL mode with a busy timeout, so several worker processes can write to one file: writers
queue for the lock instead of failing with "database is locked".
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.settings import get_settings

SQLITE_BUSY_TIMEOUT_MS = 60_000
READ_ONLY_OPTION = "tileclass_read_only"
_engines: dict[tuple[int, str], Engine] = {}
_factories: dict[tuple[int, str, bool], sessionmaker[Session]] = {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # isolation_level=None hands transaction control to SQLAlchemy's BEGIN below; WAL lets readers run
    # beside the one writer; IMMEDIATE takes the write lock up front so busy_timeout, not a deadlock, applies.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A reader's deferred BEGIN takes no write lock: under WAL it reads a snapshot while workers keep writing.
    read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """A new engine for ``url`` with the per-dialect settings tileclass relies on."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def get_engine(url: str | None = None) -> Engine:
    """This process's engine for ``url`` (default: the settings' database), made on first use."""
    url = url or get_settings().database_url
    key = (os.getpid(), url)
    engine = _engines.get(key)
    if engine is None:
        engine = _engines[key] = make_engine(url)
    return engine


def dispose_engines() -> None:
    """Drop every engine of this process (tests, and workers after a fork)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _factories.clear()


@contextmanager
def session_scope(url: str | None = None, *, read_only: bool = False) -> Iterator[Session]:
    """A session that commits on success and rolls back on error.

    ``read_only`` is for sessions that only read (queries, exports): on SQLite they then take no write lock, so a
    long export never makes workers wait.
    """
    url = url or get_settings().database_url
    key = (os.getpid(), url, read_only)
    factory = _factories.get(key)
    if factory is None:
        # One factory per engine and mode: a sessionmaker is a new Session class, whose event set-up costs
        # about as much as a point lookup, so making one per session would double the cost of small requests.
        engine = get_engine(url)
        factory = _factories[key] = sessionmaker(
            bind=engine.execution_options(**{READ_ONLY_OPTION: True}) if read_only else engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def aware(moment: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime (SQLite hands back naive ones; everything stored is UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def upsert_insert(session: Session, entity: Any) -> Any:
    """The dialect's ``INSERT`` that supports ``on_conflict_do_update`` (SQLite and PostgreSQL share its API)."""
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(entity)


def describe_database(url: str) -> str:
    """The database URL as a person should see it: without its password, a SQLite file by its absolute path (the
    default one is relative to the working directory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        parsed = parsed.set(database=os.path.abspath(parsed.database))
    return parsed.render_as_string(hide_password=True)


def unreachable_message(exc: BaseException) -> str:
    """The one line for a database that cannot be reached: its URL without the password, and the driver's first
    line of why."""
    try:
        url = make_url(get_settings().database_url).render_as_string(hide_password=True)
    except Exception:  # a URL that does not parse: say nothing of it rather than risk its password
        url = "the configured URL"
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip()
    why = (text.splitlines()[0] if text else original.__class__.__name__)[:300]
    return f"cannot reach the results database at {url}: {why}"
