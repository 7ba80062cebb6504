"""An exponential moving average (EMA) of the weights, for ``TrainConfig(ema=True)``.

The average is torch's own ``torch.optim.swa_utils.AveragedModel`` (parameters and buffers, so BatchNorm's running
statistics are averaged too), with timm's warm-up of the decay: ``min(decay, (1 + n) / (10 + n))`` after n updates.
Without the warm-up a decay of 0.999 would keep most of the random initialisation for the first thousand steps,
which is much of a short CPU run. With the warm-up the average follows the weights closely at first and smooths
over about ``1 / (1 - decay)`` steps later on, where the noise of the last high-learning-rate steps is what it
removes. When EMA is on, the average is what is validated, kept as the best state and saved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

WARMUP_OFFSET = 10  # timm's ModelEmaV3 warm-up: the decay reaches 0.9 after 80 updates, 0.99 after 890


def warmed_up_decay(decay: float, updates: int) -> float:
    """The decay used for the update after ``updates`` earlier ones."""
    return min(decay, (1 + updates) / (WARMUP_OFFSET + updates))


Tensors = Sequence[torch.Tensor]


def _ema_update(decay: float) -> Callable[[Tensors, Tensors, torch.Tensor | int], None]:
    @torch.no_grad()
    def update(averaged: Tensors, current: Tensors, n_averaged: torch.Tensor | int) -> None:
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(list(averaged), list(current), 1 - warmed_up_decay(decay, int(n_averaged)))
        else:  # integer buffers (BatchNorm's batch counter) follow the model
            for target, value in zip(averaged, current, strict=True):
                target.copy_(value)

    return update


def weight_average(model: nn.Module, *, decay: float) -> AveragedModel:
    """A moving average of ``model``'s parameters and buffers; call ``update_parameters(model)`` after each step.

    Its ``module`` is a copy of ``model`` holding the averaged weights; its ``state_dict()`` (``module.*`` and
    ``n_averaged``, all tensors) goes into epoch checkpoints.
    """
    return AveragedModel(model, multi_avg_fn=_ema_update(decay), use_buffers=True)
