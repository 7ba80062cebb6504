"""Bring a results database to the newest schema with Alembic (``tileclass db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from core.db import get_engine
from core.settings import get_settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Apply every migration up to ``revision``."""
    command.upgrade(alembic_config(url or get_settings().database_url), revision)


def ensure_schema(url: str | None = None) -> None:
    """Upgrade a fresh database by itself; an existing one is left to ``tileclass db upgrade``."""
    url = url or get_settings().database_url
    if "alembic_version" not in inspect(get_engine(url)).get_table_names():
        upgrade(url)
