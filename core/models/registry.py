"""Registering models: a checkpoint from its sidecar, copied into the model directory under its hash.

Registering reads a checkpoint's sidecar (``core.sidecar``) and copies the pair into ``TILECLASS_MODEL_DIR`` as
``<sha256>.pt``/``.json``, so that every worker that shares the model directory finds a job's model by hash;
workers check the hash again before loading (``checkpoint_for`` says where this host finds it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core.errors import NotFoundError, TileclassError
from core.models.info import UNCERTAIN_BELOW, ModelInfo
from core.models.lookups import find_model, info_of
from core.schema import Model
from core.settings import Settings
from core.sidecar import file_sha256, read_sidecar, sidecar_path

ACCEPTS_FILE = "a checkpoint file, a model name or a registered model hash"


def register_model(session: Session, *, model_hash: str, arch: str, class_names: Sequence[str], image_size: int,
                   path: str, metrics: dict[str, Any] | None = None) -> ModelInfo:
    """Add a model's row to the registry, or update the path of the row with the same hash (its file stays where
    it is: ``register_checkpoint`` is what stores a checkpoint)."""
    model = session.get(Model, model_hash)
    if model is None:
        model = Model(hash=model_hash, arch=arch, class_names=list(class_names), image_size=image_size, path=path,
                      metrics=metrics or {})
        session.add(model)
    else:
        model.path = path
    session.flush()
    return info_of(model)


def register_checkpoint(session: Session, *, checkpoint: Path, settings: Settings) -> ModelInfo:
    """Copy a checkpoint into the model directory under its hash and record it in the database."""
    info = read_sidecar(checkpoint)
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    stored = settings.model_dir / f"{info.sha256}.pt"
    if not stored.exists():
        _store(checkpoint, stored, info.sha256)
    own = {} if info.uncertain_below is None else {UNCERTAIN_BELOW: info.uncertain_below}
    return register_model(session, model_hash=info.sha256, arch=info.arch, class_names=info.class_names,
                          image_size=info.image_size, path=str(stored.resolve()), metrics=info.metrics | own)


def _store(checkpoint: Path, stored: Path, sha256: str) -> None:
    """Copy ``checkpoint`` and its sidecar to ``stored`` through temporary files of this call only, each renamed
    into place at once, the sidecar first; the copy is hashed, so a file changed after its sidecar was read is
    refused instead of stored under the wrong hash. Two producers registering one model at once both succeed."""
    folder = stored.parent
    with (tempfile.NamedTemporaryFile(dir=folder, prefix=f".{stored.name}.", suffix=".partial",
                                      delete=False) as copy, checkpoint.open("rb") as source):
        shutil.copyfileobj(source, copy)
    temporary = Path(copy.name)
    try:
        if file_sha256(temporary) != sha256:
            raise TileclassError(f"{checkpoint.name} changed while it was being registered: register it again")
        sidecar = sidecar_path(stored)
        with tempfile.NamedTemporaryFile("w", dir=folder, prefix=f".{sidecar.name}.", suffix=".partial",
                                         delete=False) as meta:
            meta.write(sidecar_path(checkpoint).read_text())
        os.replace(meta.name, sidecar)
        os.replace(temporary, stored)
    finally:
        temporary.unlink(missing_ok=True)


def resolve_model(session: Session, *, ref: str, settings: Settings, register: bool = True) -> str:
    """The hash of a model from a checkpoint path (registered on the way, unless ``register`` is False: then only
    its sidecar is checked, nothing is written or copied), a model's name, or a registered hash or unique hash
    prefix."""
    candidate = Path(ref)
    if candidate.suffix == ".pt" or candidate.is_file():
        if not register:
            return read_sidecar(candidate).sha256
        return register_checkpoint(session, checkpoint=candidate, settings=settings).hash
    return find_model(session, ref=ref, accepts=ACCEPTS_FILE).hash


def checkpoint_for(session: Session, *, model_hash: str, settings: Settings) -> Path:
    """Where this host finds the checkpoint of a registered model: the model directory, else its recorded path."""
    local = settings.model_dir / f"{model_hash}.pt"
    if local.is_file():
        return local
    model = session.get(Model, model_hash)
    if model is not None and Path(model.path).is_file():
        return Path(model.path)
    raise NotFoundError(f"no checkpoint for model {model_hash[:12]} in {settings.model_dir} or the registry")
