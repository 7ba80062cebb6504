"""Training data: an ImageFolder-style directory, loaded once into memory as uint8 tensors.

Layout (the class names are the folder names, sorted)::

    DATA_DIR/
      AnnualCrop/AnnualCrop_1.jpg
      Forest/Forest_1.jpg
      ...

Files with other suffixes are counted and ignored; hidden files are ignored silently. Images that fail to decode
are skipped with a count and a warning, never a crash. Every image becomes its model input at the storage size
through ``model.inputs.model_input``, the function every inference path uses (pixels without data set to the
training data's mean pixel, one resize), so the whole set is one (N, 3, S, S) uint8 tensor that batches index
directly (EuroSAT: 330 MB).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.choices import IMAGE_EXTENSIONS
from core.progress import progress_bar
from model.classes import match_classes
from model.errors import DataError, ImageError
from model.images import decoding_tile, open_image
from model.inputs import DEFAULT_FILL, Fill, mean_pixel, model_input, pixel_sums

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageFolder:
    """What a data directory holds: sorted class names, (path, class index) samples, and ignored files."""

    root: Path
    class_names: list[str]
    samples: list[tuple[Path, int]]
    ignored: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class LoadedImages:
    """Decoded images (uint8, N x 3 x S x S), their labels, their paths, the files skipped with reasons, and the
    fill pixel their pixels without data were given (``model.inputs``)."""

    images: torch.Tensor
    labels: torch.Tensor
    paths: list[Path]
    skipped: list[tuple[Path, str]]
    fill: Fill = DEFAULT_FILL


def scan_image_folder(root: Path, *, min_classes: int = 2) -> ImageFolder:
    """List an ImageFolder directory.

    Args:
        root: the directory.
        min_classes: fewer class folders is an error (2 to train a classifier; a test folder may hold 1).

    Raises:
        DataError: the directory is missing, has no class folders, fewer than ``min_classes``, or class folders
            without images.
    """
    if not root.is_dir():
        raise DataError(f"data directory {str(root)!r} does not exist or is not a directory")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    example = "DATA_DIR/<class>/<image>.jpg, e.g. eurosat-rgb/Forest/Forest_1.jpg"
    if not classes:
        raise DataError(f"no class folders in {str(root)!r}: expected {example}")
    if len(classes) < min_classes:
        raise DataError(f"only one class folder ({classes[0]}) in {str(root)!r}: a classifier needs at least 2")
    samples: list[tuple[Path, int]] = []
    ignored: list[Path] = []
    empty: list[str] = []
    for index, name in enumerate(classes):
        found = 0
        for path in sorted((root / name).rglob("*")):
            if path.name.startswith(".") or not path.is_file():
                continue
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                samples.append((path, index))
                found += 1
            else:
                ignored.append(path)
        if not found:
            empty.append(name)
    if empty:
        raise DataError(f"class folders without images in {str(root)!r}: {', '.join(empty)} "
                        f"(image suffixes: {', '.join(IMAGE_EXTENSIONS)})")
    if ignored:
        log.warning("ignored %d non-image file(s) in %s, e.g. %s", len(ignored), root, ignored[0])
    return ImageFolder(root, classes, samples, ignored)


def native_size(samples: Sequence[tuple[Path, int]]) -> int:
    """The larger side of the first decodable image: the size patches were made at."""
    for path, _ in samples[:50]:
        try:
            width, height = open_image(path).size
        except ImageError:
            continue
        return max(width, height)
    raise DataError("none of the first 50 images can be decoded")


def load_images(samples: Sequence[tuple[Path, int]], *, size: int, fill: Fill | None = None, workers: int = 0,
                progress: bool = False) -> LoadedImages:
    """Decode every sample into its model input at ``size`` x ``size`` (``model.inputs.model_input``, as every
    other path does); undecodable files are skipped and reported.

    Args:
        samples: (path, class index) pairs.
        size: storage size in pixels.
        fill: what pixels without data (alpha 0) become. None (the training data): these images' own mean pixel
            over their pixels with data, ``LoadedImages.fill``; the images with pixels without data are decoded
            again once it is known.
        workers: decoding threads (0: one per CPU, at most 8); the decoders release the GIL.
        progress: draw a progress bar.
    """
    workers = workers or min(8, os.cpu_count() or 1)
    images = torch.empty((len(samples), 3, size, size), dtype=torch.uint8)
    sums = torch.zeros((len(samples), 3), dtype=torch.int64)
    counts = torch.zeros(len(samples), dtype=torch.int64)
    partial = torch.zeros(len(samples), dtype=torch.bool)

    def decode(index: int, chosen: Fill) -> str | None:
        path = samples[index][0]
        try:
            with decoding_tile(path.read_bytes()) as decoded:
                images[index] = model_input(decoded, size=size, fill=chosen)
                sums[index], counts[index] = pixel_sums(decoded)
                partial[index] = decoded.valid is not None
        except ImageError as exc:
            return exc.reason
        except OSError as exc:
            return f"unreadable file ({exc.strerror or exc.__class__.__name__})"
        return None

    reasons = _each(range(len(samples)), lambda index: decode(index, fill or DEFAULT_FILL), workers=workers,
                    progress=progress)
    keep = torch.tensor([reason is None for reason in reasons], dtype=torch.bool)
    skipped = [(samples[index][0], reason) for index, reason in enumerate(reasons) if reason is not None]
    if skipped:
        counted = Counter(reason for _, reason in skipped)
        log.warning("skipped %d unreadable image(s) (%s), e.g. %s", len(skipped),
                    ", ".join(f"{n} {r}" for r, n in counted.most_common()), skipped[0][0])
    if not keep.any():
        raise DataError("no image in the data directory could be decoded")
    if fill is None:
        found = fill = mean_pixel(sums[keep].sum(dim=0), int(counts[keep].sum()))
        again = torch.nonzero(partial & keep).flatten().tolist()
        # Their pixels without data were given a stand-in: now that the mean is known, they get it (a file that
        # changed in between and no longer decodes is skipped like any other).
        for index, reason in zip(again, _each(again, lambda index: decode(index, found), workers=workers,
                                              progress=False), strict=True):
            if reason is not None:
                keep[index] = False
                skipped.append((samples[index][0], reason))
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    paths = [path for (path, _), kept in zip(samples, keep.tolist(), strict=True) if kept]
    return LoadedImages(images[keep], labels[keep], paths, skipped, fill)


def _each(indices: Sequence[int], decode: Callable[[int], str | None], *, workers: int,
          progress: bool) -> list[str | None]:
    """``decode`` of each index on ``workers`` threads, in order (its reason for a skipped file, or None)."""
    with progress_bar(progress) as bar, ThreadPoolExecutor(workers) as pool:
        task = bar.add_task("loading images", total=len(indices), status="")
        reasons = []
        for reason in pool.map(decode, indices):
            reasons.append(reason)
            bar.advance(task)
    return reasons


def load_labelled(root: Path, *, known: Sequence[str], known_as: str, size: int, fill: Fill | None = None,
                  workers: int = 0, progress: bool = False) -> LoadedImages:
    """Decode a test or validation ImageFolder whose class folders are matched to ``known`` (case-insensitively,
    see model/classes.py): its labels are indices into ``known``, and it may hold only some of those classes.
    ``fill``: the model's (``Classifier.input_fill``); None: the folder's own mean pixel (see ``load_images``).

    Raises:
        DataError: the folder is missing or empty, has a class ``known`` does not, or nothing decodes.
    """
    folder = scan_image_folder(root, min_classes=1)
    mapping = match_classes(folder.class_names, known, root=root, known_as=known_as)
    samples = [(path, mapping[label]) for path, label in folder.samples]
    return load_images(samples, size=size, fill=fill, workers=workers, progress=progress)


def stratified_split(labels: Sequence[int] | torch.Tensor, *, val_fraction: float,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split of sample indices into (train, validation), keeping each class's share in both.

    Each class with n >= 2 samples puts round(n * val_fraction) of them, at least 1 and at most n - 1, in
    validation; a class with a single sample trains only.

    Raises:
        DataError: ``val_fraction`` is not strictly between 0 and 1.
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"validation split must be between 0 and 1 (exclusive), got {val_fraction}")
    labels = torch.as_tensor(labels, dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    train: list[torch.Tensor] = []
    val: list[torch.Tensor] = []
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        count = len(members)
        n_val = min(max(round(count * val_fraction), 1), count - 1) if count >= 2 else 0
        val.append(members[:n_val])
        train.append(members[n_val:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(val)).values
