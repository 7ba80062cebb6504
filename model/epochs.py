"""Epoch checkpoints: a training run's whole state at each epoch's end, so that it can continue where it stopped.

``OUT/epochs/epoch-0003.pt`` is a ``torch.save`` of plain containers, numbers, strings and tensors only, so it
loads with ``torch.load(weights_only=True)`` like every other file tileclass reads (model/safe_load.py)::

    {"format": "tileclass-epoch/1", "epoch": 3, "step": 504, "train_seconds": 201.5,
     "config": {...TrainConfig fields...},
     "data": {"class_names": [...], "train_images": 21600, "val_images": 5400},
     "model": the training network's state_dict (normalisation buffers included),
     "optimizer": optimizer.state_dict(), "ema": the weight average's state_dict, or None,
     "rng": {"augment": the augmentation generator's state, "torch": torch's global state (dropout)},
     "best": {"epoch": 2, "loss": 0.41, "state": the state_dict with the lowest validation loss so far},
     "history": {"epochs": [...], "evaluations": [...]}}

The learning rate and the image size are functions of the step and the training time (model/schedule.py), so
those two numbers are the scheduler's state. Files are written through a temporary file and renamed, so a run
killed while writing leaves the previous epoch's file intact; only the newest ``keep_epochs`` files are kept (a
ResNet18's epoch file holds four copies of its weights: about 180 MB).
"""

from __future__ import annotations

import logging
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from model.checkpoint import atomic_write
from model.config import TrainConfig
from model.errors import CheckpointError, DataError
from model.safe_load import safe_torch_load

EPOCH_FORMAT = "tileclass-epoch/1"
EPOCHS_DIR = "epochs"
_NAME = re.compile(r"^epoch-(\d+)\.pt$")
# Options a continued run may change: where and how fast it computes and what it reports, not what it learns; and
# the paths of its starting weights (the epoch's weights replace them) and validation folder (the data's classes
# and counts are checked instead), which another worker host may mount elsewhere.
MAY_CHANGE = frozenset({"device", "precision", "workers", "keep_epochs", "eval_every", "weights", "val_dir"})
log = logging.getLogger(__name__)


def epoch_files(out_dir: Path) -> list[Path]:
    """The epoch checkpoints in ``out_dir/epochs``, oldest first."""
    folder = out_dir / EPOCHS_DIR
    found = [(int(m.group(1)), p) for p in folder.glob("epoch-*.pt") if (m := _NAME.match(p.name))]
    return [path for _, path in sorted(found)]


def save_epoch(out_dir: Path, state: dict[str, Any], *, keep: int) -> Path:
    """Write ``state`` (see the module docstring) as ``epochs/epoch-NNNN.pt`` and delete all but the newest
    ``keep`` epoch files."""
    path = out_dir / EPOCHS_DIR / f"epoch-{int(state['epoch']):04d}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: torch.save({"format": EPOCH_FORMAT, **state}, handle))
    for old in epoch_files(out_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def latest_epoch(out_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable epoch checkpoint in ``out_dir/epochs`` and its contents, or None when there is none.

    A file that cannot be read (a disk that filled up, a copy cut short) is skipped with a warning in favour of
    the one before it.
    """
    for path in reversed(epoch_files(out_dir)):
        try:
            state = safe_torch_load(path)
        except CheckpointError as exc:
            log.warning("skipping epoch checkpoint %s: %s", path, exc)
            continue
        if isinstance(state, dict) and state.get("format") == EPOCH_FORMAT:
            return path, state
        log.warning("skipping %s: not a tileclass epoch checkpoint", path)
    return None


def check_continuable(state: dict[str, Any], *, path: Path, config: TrainConfig, data: dict[str, Any]) -> None:
    """Raise DataError unless the run saved in ``state`` is this one: the same options (but ``MAY_CHANGE``) and
    the same data (classes, numbers of training and validation images)."""
    saved = state.get("config") or {}
    changed = [f.name for f in fields(TrainConfig)
               if f.name not in MAY_CHANGE and saved.get(f.name, f.default) != getattr(config, f.name)]
    if changed:
        name = changed[0]
        raise DataError(f"{path} was saved by a run with other options ({name} {saved.get(name)!r}, now "
                        f"{getattr(config, name)!r}): use the same options, or delete {path.parent} to start afresh")
    if state.get("data") != data:
        raise DataError(f"{path} was saved by a run on other data ({_describe(state.get('data'))}, now "
                        f"{_describe(data)}): use the same data, or delete {path.parent} to start afresh")


def _describe(data: Any) -> str:
    if not isinstance(data, dict):
        return "unknown"
    return (f"{len(data.get('class_names', []))} classes, {data.get('train_images')} training and "
            f"{data.get('val_images')} validation images")
