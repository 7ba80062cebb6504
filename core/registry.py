"""The model registry: checkpoints known to the results database, addressed by their content hash.

Registering reads a checkpoint's sidecar (``core.sidecar``) and copies the pair into ``TILECLASS_MODEL_DIR`` as
``<sha256>.pt``/``.json``, so that every worker that shares the model directory finds a job's model by hash;
workers check the hash again before loading.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import NotFoundError, TileclassError
from core.results import register_model
from core.schema import Model
from core.settings import Settings
from core.sidecar import file_sha256, read_sidecar, sidecar_path

UNCERTAIN_BELOW = "uncertain_below"  # the key of a model's own bound in its row's ``metrics``


def register_checkpoint(session: Session, *, checkpoint: Path, settings: Settings) -> Model:
    """Copy a checkpoint into the model directory under its hash and record it in the database."""
    info = read_sidecar(checkpoint)
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    stored = settings.model_dir / f"{info.sha256}.pt"
    if not stored.exists():
        _store(checkpoint, stored, info.sha256)
    own = {} if info.uncertain_below is None else {UNCERTAIN_BELOW: info.uncertain_below}
    return register_model(session, model_hash=info.sha256, arch=info.arch, class_names=info.class_names,
                          image_size=info.image_size, path=str(stored.resolve()), metrics=info.metrics | own)


def model_uncertain_below(session: Session, *, model_hash: str) -> float | None:
    """The registered model's own bound for uncertain answers (its sidecar's ``uncertain_below``), if it has one."""
    model = session.get(Model, model_hash)
    value = (model.metrics or {}).get(UNCERTAIN_BELOW) if model is not None else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1 \
        else None


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
    return find_registered(session, ref=ref, accepts="a checkpoint file, a model name or a registered model hash")\
        .hash


def find_registered(session: Session, *, ref: str,
                    accepts: str = "a model name or a registered model hash") -> Model:
    """A registered model by its name, its hash or a unique prefix of at least 6 characters.

    Args:
        ref: the name, hash or prefix the user typed.
        accepts: what the user could have typed, for the error message.
    """
    named = session.scalars(select(Model).where(Model.name == ref.strip())).first()
    if named is not None:
        return named
    ref = ref.strip().lower()
    matches = list(session.scalars(select(Model).where(Model.hash.startswith(ref, autoescape=True)).limit(2)))
    if len(matches) == 1 and (len(ref) >= 6 or matches[0].hash == ref):
        return matches[0]
    recent = session.execute(select(Model.hash, Model.name).order_by(Model.created_at.desc()).limit(5))
    known = ", ".join(name or digest[:12] for digest, name in recent) or "none"
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
