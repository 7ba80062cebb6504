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
        from core.db import unreachable_message

        return unreachable_message(exc)
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
