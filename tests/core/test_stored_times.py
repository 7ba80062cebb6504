"""Stored times: SQLite hands back naive datetimes, PostgreSQL aware ones; ``core.db.aware`` is the one place that
makes them comparable (every time tileclass writes is UTC)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from core.db import aware

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "model", "producer", "worker", "api")


def test_a_naive_time_is_read_as_utc_and_an_aware_one_is_kept() -> None:
    naive = datetime(2024, 5, 1, 12, 30)
    assert aware(naive) == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    other = datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    assert aware(other) is other


def test_only_core_db_aware_attaches_a_time_zone() -> None:
    """A second copy of ``aware`` (leases and job speeds had their own) would drift from the first."""
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "replace"
                        and any(keyword.arg == "tzinfo" for keyword in node.keywords)):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert [place.split(":")[0] for place in found] == ["core/db.py"], found
