"""The one way tileclass reads a torch file: ``torch.load(weights_only=True)``, failures as one line.

``weights_only`` unpickles plain containers and tensors only, so a file holding pickled code (a whole model
saved with ``torch.save(model)``, or something malicious) is refused before any of it runs. Both checkpoints
(model/checkpoint.py) and backbone weights (model/arch.py) are read through ``safe_torch_load``.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from model.errors import CheckpointError

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def safe_torch_load(path: Path, data: bytes | None = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and CPU mapping; every failure becomes a one-line CheckpointError.

    ``data``: the file's bytes, already read (and hashed) by the caller, so that what is loaded is exactly what was
    checked, even if the file is replaced in between.
    """
    if data is None:
        if not path.is_file():
            raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
        data = path.read_bytes()
    if not data:
        raise CheckpointError(f"{path.name} is empty (zero bytes): copy it again or re-run 'tileclass train'")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(_unsafe_message(path, str(exc))) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError) as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else exc.__class__.__name__
        raise CheckpointError(f"{path.name} is truncated or corrupt ({detail}): copy it again or re-run "
                              "'tileclass train'") from None


def _unsafe_message(path: Path, error: str) -> str:
    found = _GLOBAL.search(error)
    name = found.group(1) if found else "an arbitrary Python object"
    if found and name.startswith(("torchvision.models.", "torch.nn.", "__main__.")):
        return (f"{path.name} is a pickled whole model (torch.save(model), {name}), which cannot be loaded safely: "
                "in the environment that made it, re-save its weights with torch.save(model.state_dict(), 'w.pt') "
                "and pass 'tileclass train --weights w.pt', or retrain with 'tileclass train'")
    return (f"{path.name} contains pickled Python code ({name}) and was refused (only weights are loaded, never code): "
            "use a checkpoint written by 'tileclass train'")
