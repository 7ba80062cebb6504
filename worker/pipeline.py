"""The batch pipeline: tiles are read and decoded on a thread pool while the device classifies the chunk before.

A task's batch (say 64-256 tiles) is run in device-sized chunks (``TILECLASS_WORKER_BATCH_SIZE``). Decoding is
submitted up to two chunks ahead, so the pool reads and decodes chunk k+1 (libjpeg-turbo and libpng release the
GIL) while chunk k runs on the device. Each tile is decoded and resized to the model's input size in the pool
thread (or, with device decoding on CUDA, the pool reads a JPEG's bytes and the main thread decodes the chunk's
JPEGs on the GPU in one call: worker/device_decode.py); the main thread only stacks the chunk and launches the
model on it (``Classifier.launch``: a chunk bound for CUDA is pinned and uploaded on a copy stream, then run in
channels_last under bf16 autocast where the device has it). Chunk k+1 is launched before chunk k's result is
collected, so on a GPU the host's work between chunks overlaps the device's.

A tile that cannot be read or decoded fails alone, with the short reason that ``failed_tiles`` stores; the
rest of its chunk is classified. A tile with nothing in it (its source has none there, or it is entirely
transparent) is recorded as empty, neither classified nor failed. A device that runs out of memory or fails
raises ``HostError``: no tile fails.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch

from core.errors import HostError
from core.results import Classified, Empty, Failure
from core.sources import TileAbsent, TileReader, TileUnreadable
from core.sources.files import read_tile_file
from core.tiles import Tile
from model.errors import EmptyImage, ImageError
from model.images import DEFAULT_MAX_PIXELS, decode_tile
from worker.device_decode import DeviceJpeg, decode_chunk, device_decodable
from worker.metrics import StageTimes
from worker.recording import BatchOutcome

if TYPE_CHECKING:
    from model.predict import Classifier, PendingProbabilities

CHUNKS_AHEAD = 2
# What the pool hands back for a tile: its model input, or (device decoding) its JPEG bytes.
Loaded = torch.Tensor | DeviceJpeg
log = logging.getLogger(__name__)


class TileFailed(TileUnreadable):
    """One tile file cannot be read or decoded; ``reason`` is what ``failed_tiles`` records. (A tile with nothing
    to classify raises ``TileAbsent`` instead: it is recorded as empty.)"""


@dataclass(frozen=True)
class TileFile:
    """A tile of a batch and where it is read: a file (``None`` when its path was refused, with ``refused``), or
    an open archive that reads it by coordinates (``archive``)."""

    tile: Tile
    path: Path | None
    refused: str | None = None
    root: Path | None = None  # the source's folder on this host: the opened file must still lie inside it
    archive: TileReader | None = None

    @property
    def readable(self) -> bool:
        return self.path is not None or self.archive is not None


def load_tile(path: Path, classifier: Classifier, *, max_pixels: int = DEFAULT_MAX_PIXELS,
              root: Path | None = None, times: StageTimes | None = None, device_decode: bool = False) -> Loaded:
    """Read, decode and resize one tile file to the model's input: a uint8 (3, S, S) tensor, or ``TileFailed``.

    ``times`` (the batch's, for its metrics) gets the seconds spent reading and decoding, failed tiles included.
    ``device_decode``: a JPEG the device can decode is returned undecoded (``DeviceJpeg``), for its chunk's batch.
    """
    started = time.perf_counter()
    try:
        data = read_tile_file(path, root=root)
    finally:
        if times is not None:
            times.add("read", time.perf_counter() - started)
    return _decode_timed(data, classifier, max_pixels, times, device_decode)


def load_from_archive(tile: Tile, archive: TileReader, classifier: Classifier, *,
                      max_pixels: int = DEFAULT_MAX_PIXELS, times: StageTimes | None = None,
                      device_decode: bool = False) -> Loaded:
    """``load_tile`` for a tile of an archive or a tile server (whose fetch counts as its read)."""
    started = time.perf_counter()
    try:
        data = archive.read(tile)
    finally:
        if times is not None:
            times.add("read", time.perf_counter() - started)
    return _decode_timed(data, classifier, max_pixels, times, device_decode)


def _decode_timed(data: bytes, classifier: Classifier, max_pixels: int, times: StageTimes | None,
                  device_decode: bool) -> Loaded:
    if device_decode and device_decodable(data, max_pixels=max_pixels):
        return DeviceJpeg(data)
    started = time.perf_counter()
    try:
        return decode_for(data, classifier, max_pixels=max_pixels)
    finally:
        if times is not None:
            times.add("decode", time.perf_counter() - started)


def decode_for(data: bytes, classifier: Classifier, *, max_pixels: int) -> torch.Tensor:
    """Decode a tile's bytes and resize them to the model's input, or ``TileFailed`` naming why not."""
    try:
        tensor = decode_tile(data, max_pixels=max_pixels, fit=classifier.image_size)
    except EmptyImage as exc:
        raise TileAbsent(exc.reason) from None
    except ImageError as exc:
        raise TileFailed(exc.reason) from None
    except (RuntimeError, ValueError, MemoryError) as exc:
        # A decoder problem model.images did not word: still this file's problem, not the batch's.
        raise TileFailed(f"undecodable image ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    return classifier.resize_tensor(tensor)


def classify_tiles(classifier: Classifier, files: Sequence[TileFile], *, chunk_size: int,
                   pool: Executor, max_pixels: int = DEFAULT_MAX_PIXELS,
                   times: StageTimes | None = None, device_decode: bool = False) -> BatchOutcome:
    """Classify ``files`` in chunks of ``chunk_size``, reading (and decoding) ahead on ``pool``; ``times`` gets the
    seconds per stage (``worker.metrics``). ``device_decode``: JPEGs are decoded on the model's device, a chunk at
    a time (worker.device_decode)."""
    load = Loader(classifier, pool, max_pixels, times, device_decode)
    outcome = BatchOutcome()
    readable = []
    for tile_file in files:
        if not tile_file.readable:
            outcome.failures.append(Failure(tile_file.tile, tile_file.refused or "path refused"))
        else:
            readable.append(tile_file)
    chunks = [readable[i : i + chunk_size] for i in range(0, len(readable), chunk_size)]
    pending: deque[list[tuple[TileFile, Future[Loaded]]]] = deque()
    upcoming = iter(chunks)
    chunk: list[tuple[TileFile, Future[Loaded]]] = []
    in_flight: LaunchedChunk | None = None
    try:
        for _ in range(CHUNKS_AHEAD):
            _submit_next(upcoming, pending, load)
        while pending:
            chunk = pending.popleft()
            _submit_next(upcoming, pending, load)
            # Chunk k+1 is launched before chunk k is collected: its stacking, device decoding and upload overlap
            # chunk k's compute instead of leaving the device idle between chunks.
            launched = _launch_chunk(load, chunk, outcome)
            if in_flight is not None:
                _collect(load, in_flight, outcome)
            in_flight = launched
        if in_flight is not None:
            _collect(load, in_flight, outcome)
    except BaseException:
        # The batch is abandoned (a host error, say): reads not started yet must not hold the pool for the next one.
        for _, future in [*chunk, *(pair for waiting in pending for pair in waiting)]:
            future.cancel()
        raise
    return outcome


@dataclass(frozen=True)
class Loader:
    """How a batch's tiles are loaded: for which model, on which pool, within which limits."""

    classifier: Classifier
    pool: Executor
    max_pixels: int
    times: StageTimes | None
    device_decode: bool

    def submit(self, tile_file: TileFile) -> Future[Loaded]:
        if tile_file.archive is not None:
            return self.pool.submit(load_from_archive, tile_file.tile, tile_file.archive, self.classifier,
                                    max_pixels=self.max_pixels, times=self.times, device_decode=self.device_decode)
        assert tile_file.path is not None  # classify_tiles submits readable tiles only
        return self.pool.submit(load_tile, tile_file.path, self.classifier, root=tile_file.root,
                                max_pixels=self.max_pixels, times=self.times, device_decode=self.device_decode)

    def decode_on_device(self, datas: list[bytes]) -> list[torch.Tensor | TileUnreadable | TileAbsent]:
        started = time.perf_counter()
        try:
            return decode_chunk(datas, self.classifier,
                                lambda data: decode_for(data, self.classifier, max_pixels=self.max_pixels))
        finally:
            _add_time(self, "decode", started)


def _submit_next(upcoming: Iterator[list[TileFile]], pending: deque[list[tuple[TileFile, Future[Loaded]]]],
                 load: Loader) -> None:
    chunk = next(upcoming, None)
    if chunk is not None:
        pending.append([(f, load.submit(f)) for f in chunk])


@dataclass(frozen=True)
class LaunchedChunk:
    """A chunk whose forward pass is under way: its classifiable tiles, in the order of its probabilities."""

    tiles: list[Tile]
    pending: PendingProbabilities


def _launch_chunk(load: Loader, chunk: list[tuple[TileFile, Future[Loaded]]],
                  outcome: BatchOutcome) -> LaunchedChunk | None:
    """Wait for a chunk's tiles, record those that failed or hold nothing, and launch the model on the rest."""
    loaded: list[tuple[Tile, Loaded | TileUnreadable | TileAbsent]] = []
    for tile_file, future in chunk:
        try:
            loaded.append((tile_file.tile, future.result()))
        except (TileUnreadable, TileAbsent) as exc:
            loaded.append((tile_file.tile, exc))
    jpegs = [index for index, (_, item) in enumerate(loaded) if isinstance(item, DeviceJpeg)]
    if jpegs:
        decoded = load.decode_on_device([cast(DeviceJpeg, loaded[i][1]).data for i in jpegs])
        for index, result in zip(jpegs, decoded, strict=True):
            loaded[index] = (loaded[index][0], result)
    tiles: list[Tile] = []
    tensors: list[torch.Tensor] = []
    for tile, outcome_of_tile in loaded:
        if isinstance(outcome_of_tile, TileUnreadable):
            outcome.failures.append(Failure(tile, outcome_of_tile.reason))
        elif isinstance(outcome_of_tile, TileAbsent):
            outcome.empty.append(Empty(tile, outcome_of_tile.reason))
        else:
            tiles.append(tile)
            tensors.append(cast(torch.Tensor, outcome_of_tile))
    if not tensors:
        return None
    classifier = load.classifier
    started = time.perf_counter()
    # Tiles decoded on the device and on the CPU meet on the device (a copy only for the CPU's).
    images = torch.stack([t.to(classifier.device) for t in tensors]) if jpegs else torch.stack(tensors)
    with _device_errors(classifier):
        pending = classifier.launch(images)
    _add_time(load, "inference", started)
    return LaunchedChunk(tiles, pending)


def _collect(load: Loader, launched: LaunchedChunk, outcome: BatchOutcome) -> None:
    """Wait for a launched chunk's probabilities and record its tiles as classified."""
    started = time.perf_counter()
    with _device_errors(load.classifier):
        probabilities = launched.pending.result()
    predictions = load.classifier.to_predictions(probabilities)
    _add_time(load, "inference", started)
    for tile, prediction in zip(launched.tiles, predictions, strict=True):
        outcome.classified.append(Classified(tile, prediction.label, prediction.confidence, prediction.probabilities))


def _add_time(load: Loader, stage: str, started: float) -> None:
    if load.times is not None:
        load.times.add(stage, time.perf_counter() - started)


@contextmanager
def _device_errors(classifier: Classifier) -> Iterator[None]:
    """A device failure, when a chunk is launched or collected, is the host's (``HostError``), never the tiles'."""
    try:
        yield
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
