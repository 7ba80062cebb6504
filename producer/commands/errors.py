"""Errors a user can act on, turned into the one line the CLI prints (``producer.cli``) instead of a traceback."""

from __future__ import annotations

import importlib.util
import sys

from core.errors import TileclassError

ML_MODULES = ("torch", "torchvision")


def user_error(exc: BaseException) -> str | None:
    """The one-line message for ``exc`` when it is the user's to fix (None: a bug, shown with its traceback)."""
    if isinstance(exc, TileclassError):
        return str(exc)
    if isinstance(exc, ImportError) and (exc.name or "").split(".")[0] in ML_MODULES:
        return _needs_ml()
    database = sys.modules.get("sqlalchemy.exc")
    if database is not None and isinstance(exc, database.OperationalError | database.InterfaceError):
        return f"cannot reach the results database at {_database_url()}: {_first_line(exc.orig or exc)}"
    return None


def require_ml(command: str) -> None:
    """``TileclassError`` naming the ``ml`` extra when torch or torchvision is not installed."""
    if any(_missing(name) for name in ML_MODULES):
        raise TileclassError(f"'tileclass {command}' {_needs_ml()}")


def _needs_ml() -> str:
    return "needs the classifier's libraries (torch, torchvision): install them with pip install 'tileclass[ml]'"


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules, i.e. blocked
        return True


def _database_url() -> str:
    from sqlalchemy.engine import make_url

    from core.settings import get_settings

    try:
        return make_url(get_settings().database_url).render_as_string(hide_password=True)
    except Exception:  # a URL that does not parse: say nothing of it rather than risk its password
        return "the configured URL"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:300]
