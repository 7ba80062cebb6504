"""The names people give things, one rule for all: models (``tileclass models name``), tile roots and named sources
(``TILECLASS_TILE_ROOTS``, ``TILECLASS_SOURCES``).

A name is letters, digits, ``.``, ``_`` and ``-``, starts with a letter or digit and has at most 64 characters, so
it is safe as a folder name (a URL source's cache) and never a path. A model's name also never looks like a hash
prefix (six or more hex digits), so that ``--model NAME`` and ``--model PREFIX`` are never confused.

Standard library only: ``core.settings`` imports it.
"""

from __future__ import annotations

import re

from core.errors import TileclassError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HASH_LIKE = re.compile(r"^[0-9a-fA-F]{6,}$")


def check_model_name(name: str) -> str:
    """``name`` if a model may be called so; ``TileclassError`` in one line saying why not otherwise."""
    if not NAME_PATTERN.match(name):
        raise TileclassError(f"model name {name!r} must be letters, digits, '.', '_' or '-' (at most 64)")
    if HASH_LIKE.match(name):
        raise TileclassError(f"model name {name!r} could be read as a hash prefix (six or more hex digits): "
                             "choose a name with another letter in it")
    return name
