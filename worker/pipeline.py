"""The batch pipeline: tiles are read and decoded on a thread pool while the device classifies the chunk before.

A task's batch (say 64-256 tiles) is run in device-sized chunks (``TILECLASS_WORKER_BATCH_SIZE``). Decoding is
submitted up to two chunks ahead, so the pool reads and decodes chunk k+1 (libjpeg-turbo and libpng release the
GIL) while chunk k runs on the device. Each tile is decoded and resized to the model's input size in the pool
thread; the main thread only stacks the chunk and runs the model (``Classifier.predict_tensors`` pins a chunk
bound for CUDA and copies it without blocking, in channels_last, under bf16 autocast where the device has it).

A tile that cannot be read or decoded fails alone, with the short reason that ``failed_tiles`` stores; the
rest of its chunk is classified. A device that runs out of memory or fails raises ``HostError``: no tile fails.
"""

from __future__ import annotations

import logging
import stat
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from core.errors import HostError
from core.results import Classified, Failure
from core.tiles import Tile
from model.errors import ImageError
from model.images import DEFAULT_MAX_PIXELS, decode_tile
from worker.recording import BatchOutcome

if TYPE_CHECKING:
    from model.predict import Classifier

MAX_TILE_BYTES = 64 << 20  # a tile file larger than this is refused before it is read into memory
CHUNKS_AHEAD = 2
log = logging.getLogger(__name__)


class TileFailed(Exception):
    """One tile cannot be classified; ``reason`` is what ``failed_tiles`` records."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TileFile:
    """A tile of a batch and the file it is read from (``None`` when its path was refused, with ``refused``)."""

    tile: Tile
    path: Path | None
    refused: str | None = None


def read_tile(path: Path, *, max_bytes: int = MAX_TILE_BYTES) -> bytes:
    """The file's bytes, or ``TileFailed`` naming why it cannot be read."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise TileFailed("is a directory")
        if not stat.S_ISREG(info.st_mode):
            # A FIFO named like a tile would block the worker for ever in open(); a device could read without end.
            raise TileFailed("not a regular file")
        size = info.st_size
        if size > max_bytes:
            raise TileFailed(f"file too large: {size} bytes > {max_bytes}")
        return path.read_bytes()
    except FileNotFoundError:
        raise TileFailed("no such file") from None
    except IsADirectoryError:
        raise TileFailed("is a directory") from None
    except PermissionError:
        raise TileFailed("permission denied") from None
    except OSError as exc:
        raise TileFailed(f"unreadable file ({exc.strerror or exc.__class__.__name__})") from None


def load_tile(path: Path, classifier: Classifier, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Read, decode and resize one tile to the model's input: a uint8 (3, S, S) tensor, or ``TileFailed``."""
    data = read_tile(path)
    try:
        tensor = decode_tile(data, max_pixels=max_pixels, fit=classifier.image_size)
    except ImageError as exc:
        raise TileFailed(exc.reason) from None
    except (RuntimeError, ValueError, MemoryError) as exc:
        # A decoder problem model.images did not word: still this file's problem, not the batch's.
        raise TileFailed(f"undecodable image ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    return classifier.resize_tensor(tensor)


def classify_tiles(classifier: Classifier, files: Sequence[TileFile], *, chunk_size: int,
                   pool: Executor, max_pixels: int = DEFAULT_MAX_PIXELS) -> BatchOutcome:
    """Classify ``files`` in chunks of ``chunk_size``, decoding ahead on ``pool``."""
    outcome = BatchOutcome()
    readable = []
    for tile_file in files:
        if tile_file.path is None:
            outcome.failures.append(Failure(tile_file.tile, tile_file.refused or "path refused"))
        else:
            readable.append(tile_file)
    chunks = [readable[i : i + chunk_size] for i in range(0, len(readable), chunk_size)]
    pending: deque[list[tuple[TileFile, Future[torch.Tensor]]]] = deque()
    upcoming = iter(chunks)
    for _ in range(CHUNKS_AHEAD):
        _submit_next(upcoming, pending, classifier, pool, max_pixels)
    while pending:
        chunk = pending.popleft()
        _submit_next(upcoming, pending, classifier, pool, max_pixels)
        _run_chunk(classifier, chunk, outcome)
    return outcome


def _submit_next(upcoming: Iterator[list[TileFile]], pending: deque[list[tuple[TileFile, Future[torch.Tensor]]]],
                 classifier: Classifier, pool: Executor, max_pixels: int) -> None:
    chunk = next(upcoming, None)
    if chunk is not None:
        pending.append([(f, pool.submit(load_tile, f.path, classifier, max_pixels=max_pixels))
                        for f in chunk if f.path is not None])


def _run_chunk(classifier: Classifier, chunk: list[tuple[TileFile, Future[torch.Tensor]]],
               outcome: BatchOutcome) -> None:
    tiles: list[Tile] = []
    tensors: list[torch.Tensor] = []
    for tile_file, future in chunk:
        try:
            tensors.append(future.result())
            tiles.append(tile_file.tile)
        except TileFailed as exc:
            outcome.failures.append(Failure(tile_file.tile, exc.reason))
    if not tensors:
        return
    probabilities = _predict(classifier, torch.stack(tensors))
    for tile, prediction in zip(tiles, classifier.to_predictions(probabilities), strict=True):
        outcome.classified.append(Classified(tile, prediction.label, prediction.confidence, prediction.probabilities))


def _predict(classifier: Classifier, images: torch.Tensor) -> torch.Tensor:
    """The chunk's probabilities; a device failure is the host's (``HostError``), never the tiles'."""
    try:
        return classifier.predict_tensors(images)
    except torch.OutOfMemoryError as exc:
        raise HostError(f"device {classifier.device} out of memory: {str(exc).splitlines()[0][:200]}") from None
    except RuntimeError as exc:
        if not _device_lost(exc):
            raise
        raise HostError(f"device {classifier.device} failed: {str(exc).splitlines()[0][:200]}", broken=True) from None


def _device_lost(exc: RuntimeError) -> bool:
    """A CUDA error (lost device, ECC error, illegal access): every later call on the device fails too."""
    text = str(exc)
    return "CUDA error" in text or "CUDA driver" in text or "device-side assert" in text
