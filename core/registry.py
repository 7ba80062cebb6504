"""The model registry: checkpoints known to the results database, addressed by their content hash.

Every checkpoint ``NAME.pt`` that ``model.checkpoint.save_checkpoint`` writes has a sidecar ``NAME.json`` with
what the producer needs to know without torch::

    {"format": "tileclass-checkpoint/1", "sha256": "<hex of NAME.pt>", "arch": "resnet50",
     "class_names": ["Forest", ...], "image_size": 64, "metrics": {...}}

Registering copies the pair into ``TILECLASS_MODEL_DIR`` as ``<sha256>.pt``/``.json`` so that every worker that
shares the model directory finds a job's model by hash; workers check the hash again before loading.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import NotFoundError, TileclassError
from core.results import register_model
from core.schema import Model
from core.settings import Settings

SIDECAR_FORMAT = "tileclass-checkpoint/1"


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint's sidecar says about it."""

    sha256: str
    arch: str
    class_names: list[str]
    image_size: int
    metrics: dict[str, Any]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(".json")


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
    if meta.get("format") != SIDECAR_FORMAT:
        raise TileclassError(f"{sidecar.name}: unknown format {meta.get('format')!r}, expected {SIDECAR_FORMAT!r}")
    actual = file_sha256(checkpoint)
    if meta.get("sha256") != actual:
        raise TileclassError(f"{checkpoint.name} does not match the hash in {sidecar.name}: the file was changed")
    return CheckpointInfo(actual, str(meta["arch"]), list(meta["class_names"]), int(meta["image_size"]),
                          dict(meta.get("metrics") or {}))


def register_checkpoint(session: Session, *, checkpoint: Path, settings: Settings) -> Model:
    """Copy a checkpoint into the model directory under its hash and record it in the database."""
    info = read_sidecar(checkpoint)
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    stored = settings.model_dir / f"{info.sha256}.pt"
    if not stored.exists():
        partial = stored.with_suffix(".pt.partial")
        shutil.copyfile(checkpoint, partial)
        shutil.copyfile(sidecar_path(checkpoint), sidecar_path(stored))
        partial.replace(stored)
    return register_model(session, model_hash=info.sha256, arch=info.arch, class_names=info.class_names,
                          image_size=info.image_size, path=str(stored.resolve()), metrics=info.metrics)


def resolve_model(session: Session, *, ref: str, settings: Settings) -> Model:
    """A registered model from a checkpoint path (registered on the way) or a hash or unique hash prefix."""
    candidate = Path(ref)
    if candidate.suffix == ".pt" or candidate.is_file():
        return register_checkpoint(session, checkpoint=candidate, settings=settings)
    return find_registered(session, ref=ref, accepts="a checkpoint file or a registered model hash")


def find_registered(session: Session, *, ref: str, accepts: str = "a registered model hash") -> Model:
    """A registered model by its hash or a unique prefix of at least 6 characters.

    Args:
        ref: the hash or prefix the user typed.
        accepts: what the user could have typed, for the error message.
    """
    ref = ref.strip().lower()
    matches = list(session.scalars(select(Model).where(Model.hash.startswith(ref, autoescape=True)).limit(2)))
    if len(matches) == 1 and (len(ref) >= 6 or matches[0].hash == ref):
        return matches[0]
    recent = session.scalars(select(Model.hash).order_by(Model.created_at.desc()).limit(5))
    known = ", ".join(digest[:12] for digest in recent) or "none"
    problem = "is ambiguous" if len(matches) > 1 else f"is not {accepts}"
    raise NotFoundError(f"model {ref!r} {problem} (registered: {known})")


def checkpoint_for(session: Session, *, model_hash: str, settings: Settings) -> Path:
    """Where this host finds the checkpoint of a registered model: the model directory, else its recorded path."""
    local = settings.model_dir / f"{model_hash}.pt"
    if local.is_file():
        return local
    model = session.get(Model, model_hash)
    if model is not None and Path(model.path).is_file():
        return Path(model.path)
    raise NotFoundError(f"no checkpoint for model {model_hash[:12]} in {settings.model_dir} or the registry")
