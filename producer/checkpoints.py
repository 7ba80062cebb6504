"""The checkpoint file behind a MODEL argument of the commands that load a model here (``predict``, ``eval``).

MODEL is taken as everywhere else: a checkpoint file (``runs/eurosat/model.pt``), or a registered model by its name
(``lisbon-v2``), its hash or a unique hash prefix of 6+ characters (``core.models.lookups.find_model``). A registered
model's file is found in ``TILECLASS_MODEL_DIR`` by hash, else at the path the registry recorded, and loaded only
if its content still has that hash. A file given by path needs no database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.errors import TileclassError

ACCEPTS = "a checkpoint file, a model name or a registered model hash"


@dataclass(frozen=True)
class ModelFile:
    """A checkpoint to load: its path, the registry's hash to check it against (None for a file given by path),
    and how to name it to the user."""

    path: Path
    sha256: str | None
    label: str


def locate_checkpoint(ref: str) -> ModelFile:
    """The checkpoint for ``ref``; one-line errors name what was looked for and, for names, what is registered
    (``core.errors.NotFoundError``)."""
    candidate = Path(ref).expanduser()
    if candidate.is_file():
        return ModelFile(candidate, None, str(candidate))
    # Model names never contain a slash, and a .pt or .pth name is a file's: such a reference was meant as a file.
    if os.sep in ref or candidate.suffix in (".pt", ".pth"):
        raise TileclassError(f"checkpoint {ref!r} does not exist or is not a file")
    from core.models.lookups import find_model
    from core.models.registry import checkpoint_for
    from core.settings import get_settings
    from producer.session import open_session

    with open_session(read_only=True) as session:
        model = find_model(session, ref=ref, accepts=ACCEPTS)
        path = checkpoint_for(session, model_hash=model.hash, settings=get_settings())
        return ModelFile(path, model.hash, model.label)
