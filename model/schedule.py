"""What changes as training progresses: the learning rate's share of its peak, and the image size.

Both are functions of ``done``, the share of the run that has passed (0..1): steps over total steps, or the
training time over the time budget when one is set, whichever is further. Being pure functions of a number, they
need no state of their own in an epoch checkpoint: a resumed run finds them again from its step and its time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

RAMP_END = 0.75  # progressive resizing reaches the full size here, so the last quarter trains (and settles) at it
SIZE_MULTIPLE = 8  # sizes in between are multiples of 8: a ResNet's strides divide them cleanly


def lr_factor(done: float, *, schedule: str, warmup: float) -> float:
    """The learning rate's share of its peak when ``done`` (0..1) of the steps or of the time budget has passed.

    ``cosine``: linear warm-up over the first ``warmup`` share, then a half cosine that reaches 0 at done = 1.
    ``constant``: always 1 (the tutorial's Adam).
    """
    if schedule == "constant":
        return 1.0
    if done < warmup:
        return done / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (done - warmup) / (1 - warmup))))


def progressive_size(done: float, *, full: int, start_share: float) -> int:
    """The training image size at ``done``: ``start_share`` of ``full`` at first, growing linearly in steps of
    8 px to ``full`` at 3/4 of the run, then ``full`` to the end (fastai's progressive resizing; the networks are
    fully convolutional up to a global pooling, so one set of weights takes every size).

    Small images early are cheap (a ResNet's cost grows with the pixel count, so half the side costs about a
    quarter), and the early epochs learn coarse features that do not need full resolution.
    """
    start = min(full, max(SIZE_MULTIPLE, round(full * start_share / SIZE_MULTIPLE) * SIZE_MULTIPLE))
    if done >= RAMP_END or start >= full:
        return full
    size = start + (full - start) * max(done, 0.0) / RAMP_END
    return min(full, max(start, int(size) // SIZE_MULTIPLE * SIZE_MULTIPLE))


def progressive_rate(measured: Mapping[int, float], *, full: int, start_share: float, points: int = 400) -> float:
    """Training images/s over a whole run with progressive resizing, from rates ``measured`` at some sizes (the
    start and ``full`` at least).

    The time per image at each moment of the schedule is interpolated linearly in the pixel count between the
    measured sizes: a ResNet's convolutions grow with the pixels, while its per-step overheads do not, which is why
    two measured points beat the pixel count alone (at 64 px on EuroSAT that alone predicted a 2.05x speed-up
    where runs got 1.4-1.5x).
    """
    sizes = sorted(measured)
    seconds_per_image = {size: 1 / measured[size] for size in sizes}

    def cost(size: int) -> float:
        if size in seconds_per_image:
            return seconds_per_image[size]
        low = max((s for s in sizes if s < size), default=sizes[0])
        high = min((s for s in sizes if s > size), default=sizes[-1])
        if low == high:
            return seconds_per_image[low]
        share = (size**2 - low**2) / (high**2 - low**2)
        return seconds_per_image[low] + share * (seconds_per_image[high] - seconds_per_image[low])

    moments = [progressive_size((i + 0.5) / points, full=full, start_share=start_share) for i in range(points)]
    return sum(1 / cost(size) for size in moments) / points  # images = time / time per image, at each moment
