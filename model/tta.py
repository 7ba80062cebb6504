"""Test-time augmentation (TTA): classify flipped and turned copies of each image and average the probabilities.

Overhead images have no "up", and ``tileclass train`` augments with every flip and quarter turn, so a model has
learnt each orientation of a tile; averaging its answers over several of them smooths out the orientation it
happens to like least. The views are the eight symmetries of the square, in an order where the first 2 (identity,
horizontal flip) and the first 4 (both flips and the half turn: no transposition) are each a group of their own:

    0 identity   1 horizontal flip   2 half turn   3 vertical flip
    4 quarter turn   5 quarter turn + flip   6 three-quarter turn   7 three-quarter turn + flip

Each view is one more forward pass of the same batch shape (a compiled or int8 graph is reused), so N views cost
N times the model's time per image; docs/BENCHMARKS.md measures what that costs a worker.
"""

from __future__ import annotations

import torch

from model.errors import DataError

TTA_VIEWS = (1, 2, 4, 8)


def check_views(views: int) -> int:
    """``views`` when it is one of ``TTA_VIEWS``, else DataError naming them."""
    if views not in TTA_VIEWS:
        raise DataError(f"test-time augmentation takes {', '.join(map(str, TTA_VIEWS))} views, not {views}")
    return views


def dihedral_view(images: torch.Tensor, index: int) -> torch.Tensor:
    """View ``index`` (0..7, see the module docstring) of square (N, C, S, S) images."""
    turned = torch.rot90(images, k=(0, 2, 1, 3)[index // 2], dims=(2, 3)) if index not in (0, 1) else images
    return turned.flip(-1) if index % 2 else turned
