"""The problems model/ reports as one line (all ``core.errors.TileclassError``, so the CLI prints them cleanly)::

    TileclassError
    ├── CheckpointError   a checkpoint or weights file is unsafe, corrupt or does not match its metadata
    │   └── QuantizationImagesMissing  int8 was asked of a checkpoint without quantization images
    ├── ImageError        one image cannot be decoded (``reason`` is short enough to store per tile)
    │   └── EmptyImage      it decodes, but there is nothing in it (entirely transparent)
    ├── DataError         a training data folder or a training option is unusable
    └── DeviceError       the requested device or precision is not available here
"""

from __future__ import annotations

from core.errors import TileclassError


class CheckpointError(TileclassError):
    """A checkpoint is unsafe to load, corrupt, or inconsistent with its own metadata."""


class ChecksumMismatch(CheckpointError):
    """The file's content hash is not the one its model was registered with (this copy is stale or another model)."""


class QuantizationImagesMissing(CheckpointError):
    """int8 was asked of a checkpoint that holds no quantization images (one saved before they were kept)."""


class ImageError(TileclassError):
    """An image could not be decoded.

    Args:
        reason: a short, stable description ("truncated image", "not an image", ...) that callers record per tile.
        source: what was being decoded (a path), prefixed to the message when given.
    """

    def __init__(self, reason: str, *, source: str | None = None) -> None:
        self.reason = reason
        self.source = source
        super().__init__(f"{source}: {reason}" if source else reason)


class EmptyImage(ImageError):
    """The image decodes but holds nothing to classify: every pixel is transparent (a map tile's "no data")."""


class DataError(TileclassError):
    """A training data folder (or an option describing how to use it) is unusable."""


class DeviceError(TileclassError):
    """A device or precision was requested that this machine does not have."""
