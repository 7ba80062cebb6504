"""The networks: torchvision ResNets with a replaceable classification head.

Heads (``fc``):

- ``linear``: ``Linear(features, C)`` returning logits.
- ``tutorial``: the PyTorch aerial-tiles tutorial's head, ``Linear(features, 512) -> ReLU -> Dropout(0.2) ->
  Linear(512, C) -> LogSoftmax``. It returns log-probabilities; softmax of either output gives probabilities, and
  cross-entropy on log-probabilities equals the tutorial's NLLLoss, so training and prediction treat both alike.

Starting weights: ``none`` (random init), ``imagenet`` (torchvision's weights API; downloaded once into the torch
hub cache, so it works wherever the internet does) or a path to a local torchvision state_dict.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from core.choices import check_choice
from model.config import ARCHS, FREEZE, HEADS
from model.errors import CheckpointError, DataError
from model.safe_load import safe_torch_load

TUTORIAL_HIDDEN = 512
_PREFIXES = ("module.", "_orig_mod.")
log = logging.getLogger(__name__)


def build_model(arch: str, num_classes: int, *, weights: str = "none", head: str = "linear",
                freeze: str = "none") -> nn.Module:
    """A ResNet whose ``fc`` predicts ``num_classes`` classes.

    Args:
        arch: one of ``ARCHS``.
        num_classes: size of the output layer.
        weights: ``none``, ``imagenet`` or the path of a torchvision state_dict for this ``arch``.
        head: one of ``HEADS``.
        freeze: ``backbone`` leaves only the head trainable (the tutorial's transfer learning), ``none`` trains all.

    Raises:
        DataError: an unknown arch, head or freeze mode, or fewer than two classes.
        CheckpointError: the weights cannot be downloaded or do not fit ``arch``.
    """
    from torchvision import models

    check_choice("arch", arch, ARCHS, error=DataError)
    check_choice("head", head, HEADS, error=DataError)
    check_choice("freeze", freeze, FREEZE, error=DataError)
    if num_classes < 2:
        raise DataError(f"a classifier needs at least 2 classes, got {num_classes}")
    net = models.get_model(arch, weights=None)
    if weights == "imagenet":
        net.load_state_dict(_imagenet_state_dict(arch))
    elif weights != "none":
        _load_backbone(net, Path(weights), arch)
    features = net.fc.in_features
    net.fc = make_head(head, features, num_classes)
    if freeze == "backbone":
        for name, parameter in net.named_parameters():
            parameter.requires_grad = name.startswith("fc.")
    return net


def make_head(head: str, features: int, num_classes: int) -> nn.Module:
    if head == "tutorial":
        return nn.Sequential(
            nn.Linear(features, TUTORIAL_HIDDEN), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(TUTORIAL_HIDDEN, num_classes), nn.LogSoftmax(dim=1),
        )
    return nn.Linear(features, num_classes)


def head_output_key(head: str) -> str:
    """The state_dict key of the head's last weight, whose first dimension is the number of classes."""
    return "fc.3.weight" if head == "tutorial" else "fc.weight"


def strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without the ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes."""
    cleaned = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        cleaned[key] = value
    return cleaned


def _imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    from torchvision.models import get_model_weights

    # DEFAULT is the best published ImageNet weights: IMAGENET1K_V2 for resnet50/101, IMAGENET1K_V1 for 18/34.
    weights = get_model_weights(arch).DEFAULT
    try:
        state: dict[str, torch.Tensor] = torch.hub.load_state_dict_from_url(
            weights.url, progress=True, check_hash=True, weights_only=True
        )
    except (OSError, RuntimeError) as exc:
        raise CheckpointError(
            f"could not get ImageNet weights for {arch} ({weights}) into {torch.hub.get_dir()}: "
            f"{str(exc).splitlines()[0][:150]}; use --weights PATH (a local torchvision state_dict) or --weights none"
        ) from None
    return state


def _load_backbone(net: nn.Module, path: Path, arch: str) -> None:
    """Load a torchvision-style state_dict (plain, or under "model"/"state_dict") into everything but ``fc``."""
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist (use --weights imagenet|none|PATH)")
    loaded = safe_torch_load(path)
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict", loaded.get("model")), dict):
        loaded = loaded.get("state_dict", loaded.get("model"))
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"{path.name} is not a state_dict (a mapping of parameter names to tensors)")
    state = {k: v for k, v in strip_prefixes(loaded).items() if not k.startswith("fc.")}
    expected = {k: v.shape for k, v in net.state_dict().items() if not k.startswith("fc.")}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k])
    if missing or unexpected or wrong:
        problem = (f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}" if unexpected
                   else f"wrong shape for {wrong[:3]}")
        raise CheckpointError(f"{path.name} does not fit {arch}: {problem}; "
                              f"pass weights saved from a torchvision {arch}")
    net.load_state_dict(state, strict=False)
    log.info("loaded backbone weights for %s from %s", arch, path)
