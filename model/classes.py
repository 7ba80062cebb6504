"""Matching the class folders of a test or validation set to the classes a model (or a training set) knows.

Data sets spell their folders in their own case (``forest/`` in one export, ``Forest/`` in the training set), so
a folder matches a known class by its exact name first, then case-insensitively. A folder that matches nothing,
or two folders that match one class, is an error naming both sets: guessing would mislabel every image in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from model.errors import DataError


def match_classes(folders: Sequence[str], known: Sequence[str], *, root: Path, known_as: str) -> list[int]:
    """The index in ``known`` of each folder name.

    Args:
        folders: the class folder names of the data set at ``root``.
        known: the class names to match them to (a model's, or the training set's).
        root: the data set, for the message.
        known_as: what ``known`` belongs to, for the message ("the model", "the training set").

    Raises:
        DataError: a folder matches no known class, or two folders match the same one.
    """
    exact = {name: index for index, name in enumerate(known)}
    folded: dict[str, list[int]] = {}
    for index, name in enumerate(known):
        folded.setdefault(name.casefold(), []).append(index)
    indices: list[int] = []
    unknown: list[str] = []
    for name in folders:
        candidates = [exact[name]] if name in exact else folded.get(name.casefold(), [])
        if len(candidates) == 1:
            indices.append(candidates[0])
        else:
            unknown.append(name)
    if unknown:
        raise DataError(f"{', '.join(unknown)} in {str(root)!r}: not a class of {known_as} (it knows "
                        f"{', '.join(known)}; the folder has {', '.join(folders)})")
    taken: dict[int, str] = {}
    for name, index in zip(folders, indices, strict=True):
        if index in taken:
            raise DataError(f"class folders {taken[index]!r} and {name!r} in {str(root)!r} are both "
                            f"{known[index]!r}: merge them")
        taken[index] = name
    return indices
