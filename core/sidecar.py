"""The checkpoint sidecar: what a producer needs to know about a checkpoint without torch.

Every checkpoint ``NAME.pt`` that ``model.checkpoint.save_checkpoint`` writes has a sidecar ``NAME.json``::

    {"format": "tileclass-checkpoint/1", "sha256": "<hex of NAME.pt>", "arch": "resnet50",
     "class_names": ["Forest", ...], "image_size": 64, "metrics": {...}, "temperature": 1.3}

``uncertain_below`` (optional, 0 to 1) is the model's own bound for uncertain answers: a job enqueued without
``--uncertain-below`` flags the answers less confident than it. Registering the model copies it into the model's
row (``models.metrics``).

``temperature`` mirrors the checkpoint's own (the softmax temperature of ``tileclass calibrate``, which the
checkpoint's metadata holds for inference); sidecars written before it have none, which reads as 1.0.

model/ writes it (``sidecar_record``) and core/models/registry.py reads it (``read_sidecar``) to register the model in
the results database. This module imports only the standard library, so both sides share it without model/
loading the database or core/ loading torch.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import NotFoundError, TileclassError

SIDECAR_FORMAT = "tileclass-checkpoint/1"


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint's sidecar says about it."""

    sha256: str
    arch: str
    class_names: list[str]
    image_size: int
    metrics: dict[str, Any]
    temperature: float = 1.0
    uncertain_below: float | None = None


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(".json")


def sidecar_text(*, sha256: str, arch: str, class_names: Sequence[str], image_size: int,
                 metrics: dict[str, Any], temperature: float = 1.0) -> str:
    """The sidecar's JSON text for a checkpoint file whose content hash is ``sha256``."""
    record = {"format": SIDECAR_FORMAT, "sha256": sha256, "arch": arch, "class_names": list(class_names),
              "image_size": image_size, "metrics": metrics, "temperature": temperature}
    return json.dumps(record, indent=2) + "\n"


def read_sidecar(checkpoint: Path) -> CheckpointInfo:
    """The sidecar's metadata, after checking that it describes exactly this checkpoint file."""
    if not checkpoint.is_file():
        raise NotFoundError(f"model checkpoint {str(checkpoint)!r} does not exist")
    sidecar = sidecar_path(checkpoint)
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        raise TileclassError(
            f"checkpoint {str(checkpoint)!r} has no readable {sidecar.name} beside it ({exc.__class__.__name__}): "
            "save it with 'tileclass train' or model.checkpoint.save_checkpoint"
        ) from None
    if not isinstance(meta, dict):
        raise TileclassError(f"{sidecar.name}: expected a JSON object, found a {type(meta).__name__}")
    if meta.get("format") != SIDECAR_FORMAT:
        raise TileclassError(f"{sidecar.name}: unknown format {meta.get('format')!r}, expected {SIDECAR_FORMAT!r}")
    actual = file_sha256(checkpoint)
    if meta.get("sha256") != actual:
        raise TileclassError(f"{checkpoint.name} does not match the hash in {sidecar.name}: the file was changed")
    arch, names, size, metrics = (meta.get(key) for key in ("arch", "class_names", "image_size", "metrics"))
    temperature = meta.get("temperature", 1.0)
    uncertain_below = meta.get("uncertain_below")
    problems = [f"{key} must be {kind}" for key, kind, ok in [
        ("arch", "a string", isinstance(arch, str)),
        ("class_names", "a list of strings", isinstance(names, list) and all(isinstance(n, str) for n in names)),
        ("image_size", "a positive integer", type(size) is int and size > 0),
        ("metrics", "an object", metrics is None or isinstance(metrics, dict)),
        ("temperature", "a positive number", type(temperature) in (int, float) and 0 < temperature < math.inf),
        ("uncertain_below", "a number from 0 to 1", uncertain_below is None
         or (type(uncertain_below) in (int, float) and 0 <= uncertain_below <= 1)),
    ] if not ok]
    if problems:
        raise TileclassError(f"{sidecar.name}: {'; '.join(problems)}")
    assert isinstance(arch, str) and isinstance(names, list) and isinstance(size, int)
    return CheckpointInfo(actual, arch, list(names), size, dict(metrics or {}), float(temperature),
                          None if uncertain_below is None else float(uncertain_below))
