"""Test data builders used across the suite."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core.models.registry import register_model
from core.results import Classified
from core.schema import Model
from core.sources import FolderSource
from core.sources.layouts import Layout
from core.tiles import Tile

CLASSES = ["Forest", "River", "Residential"]


def model_hash(seed: str = "model") -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def classified(z: int | None, x: int | None, y: int | None, *, label: str = "Forest",
               path: str | None = None) -> Classified:
    path = path or f"{z}/{x}/{y}.png"
    probabilities = {name: (0.8 if name == label else 0.1) for name in CLASSES}
    return Classified(Tile(z, x, y, path), label, probabilities[label], probabilities)


def grid(count: int, *, z: int = 17, label: str = "Forest") -> list[Classified]:
    """``count`` distinct tiles in a square-ish block of zoom ``z``."""
    side = int(count**0.5) + 1
    return [classified(z, 1000 + i % side, 2000 + i // side, label=label) for i in range(count)]


def scored(z: int | None, x: int | None, y: int | None, label: str, confidence: float = 0.8, *,
           classes: Sequence[str] = CLASSES, path: str | None = None) -> Classified:
    """A prediction with ``confidence`` on ``label`` and the rest shared evenly by the other classes."""
    rest = (1.0 - confidence) / max(len(classes) - 1, 1)
    probabilities = {name: (confidence if name == label else rest) for name in classes}
    return Classified(Tile(z, x, y, path or f"{z}/{x}/{y}.png"), label, confidence, probabilities)


def add_model(session: Session, seed: str = "model", *, classes: Sequence[str] = CLASSES,
              created_at: datetime | None = None) -> str:
    """Register a model row and return its hash; ``created_at`` backdates it to order several models."""
    digest = register_model(session, model_hash=model_hash(seed), arch="resnet18", class_names=classes,
                            image_size=64, path=f"/models/{seed}.pt").hash
    if created_at is not None:
        row = session.get(Model, digest)
        assert row is not None
        row.created_at = created_at
    return digest


def folder_source(path: object, *, name: str = "tiles", layout: str = "xyz:{z}/{x}/{y}.{ext}") -> dict[str, Any]:
    """The source record of a job over a tile folder, as ``tileclass enqueue`` makes it."""
    return FolderSource(name, str(path), Layout.from_name(layout)).to_record()


def corrupted_in_the_middle(data: bytes) -> bytes:
    """Entropy-coded bytes changed in mid-scan (no marker created): libjpeg decodes through it with a warning."""
    changed = bytearray(data)
    middle = data.index(b"\xff\xda") + (len(data) - data.index(b"\xff\xda")) // 2
    for i in range(middle, middle + 30):
        if changed[i] != 0xFF and changed[i] ^ 0x33 != 0xFF:
            changed[i] ^= 0x33
    return bytes(changed)
