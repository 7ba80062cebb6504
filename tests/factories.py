"""Test data builders used across the suite."""

from __future__ import annotations

import hashlib

from core.results import Classified, TileKey

CLASSES = ["Forest", "River", "Residential"]


def model_hash(seed: str = "model") -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def classified(z: int | None, x: int | None, y: int | None, *, label: str = "Forest",
               root: str = "root", path: str | None = None) -> Classified:
    path = path or f"{z}/{x}/{y}.png"
    probabilities = {name: (0.8 if name == label else 0.1) for name in CLASSES}
    return Classified(TileKey(root, path, z, x, y), label, probabilities[label], probabilities)


def grid(count: int, *, z: int = 17, label: str = "Forest") -> list[Classified]:
    """``count`` distinct tiles in a square-ish block of zoom ``z``."""
    side = int(count**0.5) + 1
    return [classified(z, 1000 + i % side, 2000 + i // side, label=label) for i in range(count)]
