"""Preprocessing and augmentation on uint8 tensors.

Images travel as uint8 (N, 3, H, W) tensors from decoding to the model: a quarter of float32's memory, so a whole
data set like EuroSAT (27,000 x 64 x 64 x 3 = 330 MB) fits in memory, and batches augment without PIL.
Normalisation is not a transform here: it lives in ``Normalized.forward`` so that it runs on the device, inside
autocast, and is compiled together with the network. Its constants come from the checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Stats = tuple[float, float, float]
# ``TrainConfig.normalize`` -> (mean, std) on the 0..1 scale. "none" is the tutorial's ToTensor() alone: pixels
# divided by 255 and nothing else. Whichever is chosen is stored in the checkpoint, and inference follows it.
NORMALIZATION_STATS: dict[str, tuple[Stats, Stats]] = {
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


class Normalized(nn.Module):
    """A network that takes uint8 images: scales to 0..1, normalises with ``mean``/``std``, then runs ``net``."""

    mean: torch.Tensor
    inv_std: torch.Tensor

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("inv_std", 1.0 / (torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images.float() - self.mean) * self.inv_std)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 (3, H, W) or (N, 3, H, W) images to ``size`` x ``size`` (bilinear, antialiased), still uint8.

    Tiles and patches are square; a non-square image is stretched rather than cropped, so nothing at its edges
    is lost.
    """
    if images.shape[-2:] == (size, size):
        return images
    batch = images if images.dim() == 4 else images.unsqueeze(0)
    if batch.device.type == "cpu":
        # PyTorch's own uint8 kernel (fixed point, vectorised) at about 3x the float path's speed on a 256 px tile,
        # each pixel within 1 of it: what a GPU worker's host threads spend most of their time on (bench/resize.py).
        out = F.interpolate(batch, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    else:  # (no uint8 kernel on CUDA)
        out = F.interpolate(batch.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    return out if images.dim() == 4 else out.squeeze(0)


def pad_to(images: torch.Tensor, count: int) -> torch.Tensor:
    """``images`` (at most ``count``) followed by copies of the last one up to ``count``, channels_last."""
    if len(images) < count:
        images = torch.cat([images, images[-1:].expand(count - len(images), -1, -1, -1)])
    return images.contiguous(memory_format=torch.channels_last)


def augment(images: torch.Tensor, generator: torch.Generator, *, shift: int | None = None,
            jitter: float = 0.1) -> torch.Tensor:
    """Random augmentation for overhead imagery, per image, on a uint8 (N, 3, S, S) batch.

    Overhead images have no "up": a horizontal flip plus a random multiple of 90 degrees covers all eight
    orientations of the square. Small shifts (reflection padded, up to S/16 pixels) and mild brightness and
    contrast jitter (+-``jitter``) add the variation of neighbouring tiles and other acquisition days.
    """
    n, _, height, width = images.shape
    out = images.clone()
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    if height == width:
        turns = torch.randint(0, 4, (n,), generator=generator)
        for k in (1, 2, 3):
            chosen = turns == k
            if chosen.any():
                out[chosen] = torch.rot90(out[chosen], k, dims=(2, 3))
    shift = max(1, height // 16) if shift is None else shift
    if shift > 0:
        out = _random_shift(out, shift, generator)
    if jitter > 0:
        out = _jitter(out, jitter, generator)
    return out


def _random_shift(images: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    n, _, height, width = images.shape
    padded = F.pad(images.float(), (shift, shift, shift, shift), mode="reflect")
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=generator)
    rows = (torch.arange(height).unsqueeze(0) + dy.unsqueeze(1)).view(n, 1, height, 1)
    cols = (torch.arange(width).unsqueeze(0) + dx.unsqueeze(1)).view(n, 1, 1, width)
    channels = torch.arange(images.shape[1]).view(1, -1, 1, 1)
    batch = torch.arange(n).view(n, 1, 1, 1)
    return padded[batch, channels, rows, cols].to(torch.uint8)


def _jitter(images: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    n = images.shape[0]
    brightness = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * amount
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * amount
    values = images.float()
    mean = values.mean(dim=(1, 2, 3), keepdim=True)
    values = (values - mean) * contrast + mean * brightness
    return values.round_().clamp_(0, 255).to(torch.uint8)
