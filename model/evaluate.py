"""Validation passes over in-memory images: mean cross-entropy, accuracy, predictions and the network's scores."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.device import autocast
from model.scores import confusion_matrix
from model.transforms import resize


@dataclass(frozen=True)
class EvalResult:
    """Mean cross-entropy (no label smoothing), accuracy, the predicted and true classes, and the network's float32
    (N, C) scores (logits or log-probabilities, what the temperature is fitted on); CPU tensors."""

    loss: float
    accuracy: float
    predicted: torch.Tensor
    targets: torch.Tensor
    scores: torch.Tensor

    def confusion(self, num_classes: int) -> torch.Tensor:
        return confusion_matrix(self.targets, self.predicted, num_classes)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor, *,
             batch_size: int, device: torch.device, precision: str, size: int) -> EvalResult:
    """Run ``model`` (uint8 images in, logits or log-probabilities out) over ``images[indices]`` in eval mode."""
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64)
    predicted: list[torch.Tensor] = []
    scores: list[torch.Tensor] = []
    with torch.inference_mode(), autocast(device, precision):
        for batch in indices.split(batch_size):
            inputs = resize(images[batch], size).to(device, non_blocking=True)
            output = model(inputs.contiguous(memory_format=torch.channels_last)).float()
            targets = labels[batch].to(device, non_blocking=True)
            total_loss += F.cross_entropy(output, targets, reduction="sum").double().cpu()
            predicted.append(output.argmax(dim=1).cpu())
            scores.append(output.cpu())
    model.train(was_training)
    targets = labels[indices]
    guesses = torch.cat(predicted) if predicted else torch.empty(0, dtype=torch.int64)
    outputs = torch.cat(scores) if scores else torch.empty(0, 0)
    count = max(len(indices), 1)
    return EvalResult(float(total_loss) / count, float((guesses == targets).sum()) / count, guesses, targets, outputs)
