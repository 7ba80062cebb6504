"""The batch pipeline: tiles are read and decoded on a thread pool while the device classifies the chunk before.

A task's batch (say 64-256 tiles) is run in device-sized chunks (``TILECLASS_WORKER_BATCH_SIZE``). Decoding is
submitted up to two chunks ahead, so the pool reads and decodes chunk k+1 (libjpeg-turbo and libpng release the
GIL) while chunk k runs on the device. Each tile becomes the model's input in the pool thread through the one
function every path uses (``model.inputs.model_input``: pixels without data set to the checkpoint's fill pixel, one
resize); with device decoding on CUDA, the pool reads a JPEG's bytes and the main thread decodes the chunk's JPEGs
on the GPU in one call, then the same function (worker/device_decode.py). The main thread stacks the chunk and
launches the model on it (``Classifier.launch``: pinned, uploaded on a copy stream, channels_last, bf16 autocast
where the device has it); chunk k+1 is launched before chunk k's result is collected, so the host's work between
chunks overlaps the device's. Coverage (the share of pixels with data: alpha above 0, a raster's nodata and mask)
is measured at decode: below ``min_coverage`` (``TILECLASS_MIN_COVERAGE``) a tile is empty (``partial: 6%
data``); at or above it is classified, its ``Classified.coverage`` kept.

A tile that cannot be read or decoded fails alone, with the short reason that ``failed_tiles`` stores; the
rest of its chunk is classified. A tile with nothing in it (its source has none there, it is entirely
transparent, or its coverage is below the bound) is recorded as empty, neither classified nor failed. A device
that runs out of memory or fails raises ``HostError``: no tile fails.
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
from core.sources.base import TileAbsent, TileReader, TileUnreadable
from core.sources.files import read_tile_file
from core.tiles import Tile
from model.errors import EmptyImage, ImageError
from model.images import DEFAULT_MAX_PIXELS
from model.inputs import DEFAULT_MIN_COVERAGE, ModelInput, coverage_shortfall
from worker.device_decode import DeviceJpeg, decode_chunk, device_decodable
from worker.metrics import StageTimes
from worker.recording import BatchOutcome

if TYPE_CHECKING:
    from model.predict import Classifier, PendingProbabilities

CHUNKS_AHEAD = 2
# What the pool hands back for a tile: its model input, or (device decoding) its JPEG bytes.
Loaded = ModelInput | DeviceJpeg
log = logging.getLogger(__name__)


class TileFailed(TileUnreadable):
    """One tile file cannot be read or decoded; ``reason`` is what ``failed_tiles`` records. (A tile with nothing
    to classify raises ``TileAbsent`` instead: it is recorded as empty.)"""


@dataclass(frozen=True)
class TileFile:
    """A tile of a batch and how it is read: through its source's reader (``reader``: every kind, a folder's
    included: ``core.sources``), or from a plain file by its path (``path``: images that are not a source's)."""

    tile: Tile
    path: Path | None = None
    reader: TileReader | None = None

    @property
    def readable(self) -> bool:
        return self.path is not None or self.reader is not None


def load_tile(path: Path, classifier: Classifier, *, max_pixels: int = DEFAULT_MAX_PIXELS,
              times: StageTimes | None = None, device_decode: bool = False,
              min_coverage: float = DEFAULT_MIN_COVERAGE) -> Loaded:
    """Read and decode one image file into the model's input (``decode_for``), or ``TileFailed``.

    ``times`` (the batch's, for its metrics) gets the seconds spent reading and decoding, failed tiles included.
    ``device_decode``: a JPEG the device can decode is returned undecoded (``DeviceJpeg``), for its chunk's batch.
    """
    started = time.perf_counter()
    try:
        data = read_tile_file(path)
    finally:
        if times is not None:
            times.add("read", time.perf_counter() - started)
    return _decode_timed(data, classifier, max_pixels, times, device_decode, min_coverage)


def load_from_source(tile: Tile, reader: TileReader, classifier: Classifier, *,
                     max_pixels: int = DEFAULT_MAX_PIXELS, times: StageTimes | None = None,
                     device_decode: bool = False, min_coverage: float = DEFAULT_MIN_COVERAGE) -> Loaded:
    """``load_tile`` for a tile of a source, read through its reader (a folder's file, an archive's entry, a tile
    server's answer: a fetch counts as the read)."""
    started = time.perf_counter()
    try:
        data = reader.read(tile)
    finally:
        if times is not None:
            times.add("read", time.perf_counter() - started)
    return _decode_timed(data, classifier, max_pixels, times, device_decode, min_coverage)


def _decode_timed(data: bytes, classifier: Classifier, max_pixels: int, times: StageTimes | None,
                  device_decode: bool, min_coverage: float) -> Loaded:
    if device_decode and device_decodable(data, max_pixels=max_pixels):
        return DeviceJpeg(data)
    started = time.perf_counter()
    try:
        return decode_for(data, classifier, max_pixels=max_pixels, min_coverage=min_coverage)
    finally:
        if times is not None:
            times.add("decode", time.perf_counter() - started)


def decode_for(data: bytes, classifier: Classifier, *, max_pixels: int,
               min_coverage: float = DEFAULT_MIN_COVERAGE) -> ModelInput:
    """A tile's bytes as the model's input with their coverage (``Classifier.decode``); ``TileFailed`` naming why
    not, or ``TileAbsent`` for a tile with nothing to classify (entirely transparent, or ``partial: 6% data``
    below ``min_coverage``)."""
    try:
        loaded = classifier.decode(data, max_pixels=max_pixels)
    except EmptyImage as exc:
        raise TileAbsent(exc.reason) from None
    except ImageError as exc:
        raise TileFailed(exc.reason) from None
    except (RuntimeError, ValueError, MemoryError) as exc:
        # A decoder problem model.images did not word: still this file's problem, not the batch's.
        raise TileFailed(f"undecodable image ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    shortfall = coverage_shortfall(loaded.coverage, min_coverage=min_coverage)
    if shortfall is not None:
        raise TileAbsent(shortfall)
    return loaded


def classify_tiles(classifier: Classifier, files: Sequence[TileFile], *, chunk_size: int,
                   pool: Executor, max_pixels: int = DEFAULT_MAX_PIXELS,
                   times: StageTimes | None = None, device_decode: bool = False,
                   min_coverage: float = DEFAULT_MIN_COVERAGE) -> BatchOutcome:
    """Classify ``files`` in chunks of ``chunk_size``, reading (and decoding) ahead on ``pool``; ``times`` gets the
    seconds per stage (``worker.metrics``). ``device_decode``: JPEGs are decoded on the model's device, a chunk at
    a time (worker.device_decode). ``min_coverage``: the share of pixels with data below which a tile is empty."""
    load = Loader(classifier, pool, max_pixels, times, device_decode, min_coverage)
    outcome = BatchOutcome()
    readable = []
    for tile_file in files:
        if not tile_file.readable:
            outcome.failures.append(Failure(tile_file.tile, "nothing to read it from"))
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
    min_coverage: float

    def submit(self, tile_file: TileFile) -> Future[Loaded]:
        if tile_file.reader is not None:
            return self.pool.submit(load_from_source, tile_file.tile, tile_file.reader, self.classifier,
                                    max_pixels=self.max_pixels, times=self.times, device_decode=self.device_decode,
                                    min_coverage=self.min_coverage)
        assert tile_file.path is not None  # classify_tiles submits readable tiles only
        return self.pool.submit(load_tile, tile_file.path, self.classifier, max_pixels=self.max_pixels,
                                times=self.times, device_decode=self.device_decode, min_coverage=self.min_coverage)

    def decode_on_device(self, datas: list[bytes]) -> list[ModelInput | TileUnreadable | TileAbsent]:
        started = time.perf_counter()
        try:
            return decode_chunk(datas, self.classifier, lambda data: decode_for(
                data, self.classifier, max_pixels=self.max_pixels, min_coverage=self.min_coverage))
        finally:
            _add_time(self, "decode", started)


def _submit_next(upcoming: Iterator[list[TileFile]], pending: deque[list[tuple[TileFile, Future[Loaded]]]],
                 load: Loader) -> None:
    chunk = next(upcoming, None)
    if chunk is not None:
        pending.append([(f, load.submit(f)) for f in chunk])


@dataclass(frozen=True)
class LaunchedChunk:
    """A chunk whose forward pass is under way: its classifiable tiles and their coverage, in the order of its
    probabilities."""

    tiles: list[Tile]
    coverages: list[float]
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
    inputs: list[ModelInput] = []
    for tile, outcome_of_tile in loaded:
        if isinstance(outcome_of_tile, TileUnreadable):
            outcome.failures.append(Failure(tile, outcome_of_tile.reason))
        elif isinstance(outcome_of_tile, TileAbsent):
            outcome.empty.append(Empty(tile, outcome_of_tile.reason))
        else:
            tiles.append(tile)
            inputs.append(cast(ModelInput, outcome_of_tile))
    if not inputs:
        return None
    classifier = load.classifier
    started = time.perf_counter()
    # Tiles decoded on the device and on the CPU meet on the device (a copy only for the CPU's).
    tensors = [item.tensor for item in inputs]
    images = torch.stack([t.to(classifier.device) for t in tensors]) if jpegs else torch.stack(tensors)
    with _device_errors(classifier):
        pending = classifier.launch(images)
    _add_time(load, "inference", started)
    return LaunchedChunk(tiles, [item.coverage for item in inputs], pending)


def _collect(load: Loader, launched: LaunchedChunk, outcome: BatchOutcome) -> None:
    """Wait for a launched chunk's probabilities and record its tiles as classified."""
    started = time.perf_counter()
    with _device_errors(load.classifier):
        probabilities = launched.pending.result()
    predictions = load.classifier.to_predictions(probabilities)
    _add_time(load, "inference", started)
    for tile, coverage, prediction in zip(launched.tiles, launched.coverages, predictions, strict=True):
        outcome.classified.append(Classified(tile, prediction.label, prediction.confidence, prediction.probabilities,
                                             coverage=coverage))


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
