"""``dataset export``: a job's tiles as an ImageFolder to train the next model on, with a manifest of their origin.

Which tiles. The job's results (``core.queries.iter_job_labels``): every tile a person corrected (``tileclass
correct``), under its newest correction's label, and every other tile whose prediction is at least
``min_confidence``, under its predicted label. ``per_class`` keeps at most that many tiles of each label, always
the same ones: corrected tiles first, then the most confident predictions, ties by tile (z, x, y, then path).

Where they come from. Each image is read from the job's own source on this host, as workers read it (a folder
file, an MBTiles/PMTiles entry, a tile server, a tile cut from a GeoTIFF: ``source.reader(settings)``). JPEG, PNG
and WebP tiles are copied byte for byte; others (TIFF, GIF, a raster's cut) are written as PNG. A tile that cannot
be read or is not an image is left out and counted with its reason.

What is written. ``LABEL/Z-X-Y.EXT`` (a tile without coordinates: its path's name and a short hash of the path),
``manifest.csv`` with one row per image (``MANIFEST_COLUMNS``), and ``dataset.json``, written last, with the job,
model, source, options and counts. ``producer.dataset_folder`` keeps a previous export safe until the new one is
complete.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from PIL import Image

from core.choices import IMAGE_FORMATS
from core.queries.corrections import LabelledTile
from core.sources import TileAbsent, TileReader, TileUnreadable

KEPT_AS_IS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
MANIFEST_COLUMNS = ("file", "label", "origin", "confidence", "uncertain", "coverage", "predicted_label", "model",
                    "author", "corrected_at", "job", "source", "z", "x", "y", "path")
READ_THREADS = 8  # reads from a tile server or a network share wait more than they compute
CHUNK = 256
_UNSAFE = re.compile(r"[^\w .,()+-]")


@dataclass
class ExportCounts:
    """What an export wrote per label, from corrections and from predictions, and what it left out and why."""

    per_label: Counter[str] = field(default_factory=Counter)
    corrected: int = 0
    predicted: int = 0
    left_out: Counter[str] = field(default_factory=Counter)

    @property
    def written(self) -> int:
        return self.corrected + self.predicted


def capped(rows: Iterable[LabelledTile], per_class: int) -> list[LabelledTile]:
    """At most ``per_class`` tiles of each label: corrected first, then by confidence, then by tile; by label."""
    kept: dict[str, list[_Ranked]] = {}
    for row in rows:
        heap = kept.setdefault(row.label, [])
        ranked = _Ranked(_rank(row), row)
        if len(heap) < per_class:
            heapq.heappush(heap, ranked)
        elif ranked.key < heap[0].key:  # better than the worst one kept
            heapq.heapreplace(heap, ranked)
    return [ranked.row for label in sorted(kept) for ranked in sorted(kept[label], key=lambda r: r.key)]


@dataclass(frozen=True)
class _Ranked:
    key: tuple[Any, ...]
    row: LabelledTile

    def __lt__(self, other: _Ranked) -> bool:  # the heap's top is the worst row kept
        return self.key > other.key


def _rank(row: LabelledTile) -> tuple[Any, ...]:
    return (row.correction is None, -row.answer.confidence, row.answer.tile.identity())


def write_images(rows: Iterable[LabelledTile], reader: TileReader, folder: Path, manifest: TextIO, *,
                 source_name: str, max_pixels: int, on_row: Callable[[int], object] | None = None) -> ExportCounts:
    """Read each row's tile, write it under its label's folder and its manifest row; returns the counts."""
    counts = ExportCounts()
    writer = csv.writer(manifest, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="dataset-read") as pool:
        for chunk in _chunks(iter(rows), CHUNK):
            for row, image in zip(chunk, pool.map(lambda r: _image(reader, r, max_pixels), chunk), strict=True):
                if isinstance(image, str):
                    counts.left_out[image] += 1
                else:
                    data, extension = image
                    name = f"{folder_name(row.label)}/{file_stem(row)}.{extension}"
                    (folder / name).parent.mkdir(exist_ok=True)
                    (folder / name).write_bytes(data)
                    writer.writerow(_manifest_row(name, row, source_name))
                    counts.per_label[row.label] += 1
                    if row.correction is not None:
                        counts.corrected += 1
                    else:
                        counts.predicted += 1
            if on_row is not None:
                on_row(len(chunk))
    return counts


def _chunks(rows: Iterator[LabelledTile], size: int) -> Iterator[list[LabelledTile]]:
    while chunk := list(islice(rows, size)):
        yield chunk


def _image(reader: TileReader, row: LabelledTile, max_pixels: int) -> tuple[bytes, str] | str:
    """The tile's image bytes and extension, or why it is left out."""
    try:
        return image_file(reader.read(row.answer.tile), max_pixels=max_pixels)
    except (TileUnreadable, TileAbsent) as exc:  # a path that would leave its folder too
        return exc.reason


def image_file(data: bytes, *, max_pixels: int) -> tuple[bytes, str] | str:
    """JPEG, PNG and WebP bytes as they are; other images as PNG; or why the bytes are not a usable image."""
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as picture:
            width, height = picture.size
            if width * height > max_pixels:
                return f"image too large ({width}x{height} pixels)"
            if picture.format in KEPT_AS_IS:
                return data, KEPT_AS_IS[picture.format]
            out = io.BytesIO()
            picture.convert("RGBA" if "A" in picture.getbands() else "RGB").save(out, format="PNG")
            return out.getvalue(), "png"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return "not a readable image"


def folder_name(label: str) -> str:
    """A label as a class folder's name: characters that could make a path become ``_``, never a hidden name."""
    safe = _UNSAFE.sub("_", label).strip() or "_"
    return "_" + safe if safe.startswith(".") else safe


def file_stem(row: LabelledTile) -> str:
    tile = row.answer.tile
    if tile.has_coordinates:
        return f"{tile.z}-{tile.x}-{tile.y}"
    path = tile.path or ""
    digest = hashlib.sha256(path.encode()).hexdigest()[:10]
    return f"{_UNSAFE.sub('_', Path(path).stem)[:80]}-{digest}"


def _manifest_row(name: str, row: LabelledTile, source_name: str) -> list[Any]:
    answer, correction, tile = row.answer, row.correction, row.answer.tile
    coverage = "" if answer.coverage is None else answer.coverage  # blank: from before coverage was measured
    return [name, row.label, "corrected" if correction else "predicted", answer.confidence,
            str(answer.uncertain).lower(), coverage, answer.label, answer.model_hash,
            correction.author if correction else "", correction.created_at.isoformat() if correction else "",
            answer.job_id, source_name,
            *("" if value is None else value for value in (tile.z, tile.x, tile.y, tile.path))]
