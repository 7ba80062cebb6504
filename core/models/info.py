"""``ModelInfo``: a registered model as everything outside the registry reads it (plain fields, no session).

Standard library only, so any layer can hold one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

UNCERTAIN_BELOW = "uncertain_below"  # the key of a model's own bound in its row's ``metrics``


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A registered model: its hash, optional name, architecture, classes, input size, where its checkpoint was
    registered from (``path``), the summary metrics it was registered with and when.

    ``results`` is how many results it has where the caller asked for the count (``list_models``,
    ``find_model(..., count_results=True)``), else None.
    """

    hash: str
    name: str | None
    arch: str
    class_names: tuple[str, ...]
    image_size: int
    path: str
    metrics: dict[str, Any] = field(hash=False)
    created_at: datetime
    results: int | None = None

    @property
    def label(self) -> str:
        """How messages name it: its name, else the start of its hash."""
        return self.name or self.hash[:12]

    @property
    def val_accuracy(self) -> float | None:
        accuracy = self.metrics.get("val_accuracy")
        return float(accuracy) if isinstance(accuracy, int | float) else None

    @property
    def uncertain_below(self) -> float | None:
        """The model's own bound for uncertain answers (its sidecar's ``uncertain_below``), if it has one."""
        value = self.metrics.get(UNCERTAIN_BELOW)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1 \
            else None

    def as_dict(self, *, full: bool = False) -> dict[str, Any]:
        """What ``models list --json`` and ``/api/models`` give; ``full`` adds the classes, the files, the metrics,
        the training configuration and the temperature (``models show``, ``/api/models/{model}``), the last two
        read from the registered checkpoint's sidecar."""
        data: dict[str, Any] = {
            "hash": self.hash, "name": self.name, "arch": self.arch, "classes": len(self.class_names),
            "image_size": self.image_size, "val_accuracy": self.val_accuracy,
            "registered_at": self.created_at.isoformat(), "results": self.results}
        if full:
            sidecar = Path(self.path).with_suffix(".json")
            data |= {"class_names": list(self.class_names), "path": self.path, "metrics": self.metrics,
                     "metrics_path": str(sidecar), "train_config": _train_config(sidecar),
                     "temperature": _temperature(sidecar)}
        return data


def _temperature(sidecar: Path) -> float | None:
    """The softmax temperature the sidecar mirrors (1.0 for sidecars from before temperatures; None: unreadable)."""
    try:
        value = json.loads(sidecar.read_text()).get("temperature", 1.0)
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def _train_config(sidecar: Path) -> dict[str, Any] | None:
    try:
        config = json.loads(sidecar.read_text()).get("train_config")
    except (OSError, ValueError, AttributeError):
        return None
    return config if isinstance(config, dict) else None
