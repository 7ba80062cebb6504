"""PMTiles v3 directories, decoded with bounds: a hostile archive gets a ``DamagedDirectory`` naming what is wrong,
never a directory that takes gigabytes or hours.

A directory is ``n`` entries as varints, column by column (the spec's section 4): ``n``; each tile id as the delta
from the one before; each run length (0: the entry points to a leaf directory); each length; each offset + 1 (0: right
after the entry before). Decoding it with numpy keeps an entry in 24 bytes (a list of ``pmtiles.tile.Entry`` objects
takes about 140) and takes milliseconds where a loop over the bytes takes seconds, so a directory the bound allows
(``MAX_DIRECTORY_BYTES`` inflated) stays cheap to decode and to cache. The checks are the spec's: ids in strictly
increasing order, runs that do not reach the next entry, lengths and runs in 32 bits, and every entry inside its
section of the file.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from core.sources.decompress import Damaged, TooLarge, gunzip

# The writers (go-pmtiles, the pmtiles package) size leaves so that the root keeps to 16 KiB: a few thousand leaves.
# An entry takes 4 to 9 bytes inflated: a 4 MiB leaf holds about half a million, and a few thousand such leaves
# address over a billion tiles. A bigger directory is refused.
MAX_DIRECTORY_BYTES = 4 << 20
MAX_UINT32 = (1 << 32) - 1  # the spec's width for a length and a run length
MAX_TILE_ID = 1 << 62  # above the last tile id of zoom 31
CACHED_ENTRIES = 1 << 21  # the entries a reader keeps decoded (about 48 MiB)


class DamagedDirectory(ValueError):
    """A directory that breaks the spec or the bounds; the message says how."""


@dataclass(frozen=True)
class Directory:
    """One decoded directory: four columns of the same length, tile ids strictly increasing."""

    tile_ids: np.ndarray  # uint64
    offsets: np.ndarray  # uint64, relative to the section the entry points into
    lengths: np.ndarray  # uint32
    run_lengths: np.ndarray  # uint32: 0 for an entry that points to a leaf directory

    def __len__(self) -> int:
        return len(self.tile_ids)

    def entry(self, index: int) -> tuple[int, int, int, int]:
        """Entry ``index`` as (tile id, offset, length, run length)."""
        return (int(self.tile_ids[index]), int(self.offsets[index]), int(self.lengths[index]),
                int(self.run_lengths[index]))

    def find(self, tile_id: int) -> int | None:
        """The index of the entry that holds ``tile_id`` (a run over it, or the leaf whose range it falls in), as
        ``pmtiles.tile.find_tile`` finds it; None when the directory has none."""
        index = int(np.searchsorted(self.tile_ids, np.uint64(tile_id), side="right")) - 1
        if index < 0:
            return None
        run = int(self.run_lengths[index])
        return index if run == 0 or tile_id - int(self.tile_ids[index]) < run else None

    def first_at(self, tile_id: int) -> int:
        """The index of the first entry that may hold ``tile_id`` or a later id."""
        return max(int(np.searchsorted(self.tile_ids, np.uint64(tile_id), side="right")) - 1, 0)

    def end_before(self, tile_id: int) -> int:
        """One past the last entry that starts below ``tile_id``."""
        return int(np.searchsorted(self.tile_ids, np.uint64(tile_id), side="left"))


def decode(stored: bytes | memoryview, *, gzipped: bool, tile_data: int, leaves: int) -> Directory:
    """The directory stored in ``stored``, checked against the sizes of the tile data and leaf sections."""
    try:
        if not gzipped and len(stored) > MAX_DIRECTORY_BYTES:
            raise TooLarge(f"directory of more than {MAX_DIRECTORY_BYTES} bytes")
        raw = gunzip(stored, limit=MAX_DIRECTORY_BYTES, what="directory") if gzipped else bytes(stored)
    except TooLarge as exc:
        raise DamagedDirectory(f"{exc}, tileclass's bound for one directory") from None
    except Damaged as exc:
        raise DamagedDirectory(str(exc)) from None
    values = _varints(raw)
    if not len(values):
        raise DamagedDirectory("empty directory (no entry count)")
    count = int(values[0])
    if len(values) < 1 + 4 * count:
        raise DamagedDirectory(f"directory of {count} entries holds only {len(values) - 1} values, not {4 * count}")
    deltas, runs, lengths, offsets = values[1 : 1 + 4 * count].reshape(4, count)
    tile_ids = np.cumsum(deltas, dtype=np.uint64)
    directory = Directory(tile_ids, _offsets(offsets, lengths), lengths.astype(np.uint32), runs.astype(np.uint32))
    _check(directory, runs, lengths, tile_data=tile_data, leaves=leaves)
    return directory


def _varints(raw: bytes) -> np.ndarray:
    """Every complete varint in ``raw`` (7 bits a byte, least significant first), as uint64."""
    data = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(data < 0x80).astype(np.int32)  # a varint ends at a byte without its high bit
    if not len(ends):
        return np.zeros(0, dtype=np.uint64)
    starts = np.concatenate((np.zeros(1, dtype=np.int32), ends[:-1] + 1))
    widths = ends - starts + 1
    longest = int(widths.max())
    if longest > 9:  # 63 bits: more than any tile id, offset or length of a file
        raise DamagedDirectory("a varint of more than 9 bytes")
    values = (data[starts] & 0x7F).astype(np.uint64)
    for shift in range(1, longest):
        longer = np.flatnonzero(widths > shift)
        values[longer] |= (data[starts[longer] + shift] & 0x7F).astype(np.uint64) << np.uint64(7 * shift)
    return values


def _offsets(stored: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Offsets from their stored form: ``offset + 1``, or 0 for "right after the entry before"."""
    if not len(stored):
        return stored
    if stored[0] == 0:
        raise DamagedDirectory("the first entry has no offset")
    explicit = stored != 0
    anchors = np.maximum.accumulate(np.where(explicit, np.arange(len(stored)), 0))
    before = np.concatenate(([0], np.cumsum(lengths[:-1], dtype=np.uint64)))  # lengths of the entries before
    return (stored[anchors] - np.uint64(1)) + (before - before[anchors])


def _check(directory: Directory, runs: np.ndarray, lengths: np.ndarray, *, tile_data: int, leaves: int) -> None:
    ids = directory.tile_ids
    if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():  # also catches a sum of deltas past 64 bits
        raise DamagedDirectory("tile ids not in strictly increasing order")
    if len(ids) and int(ids[-1]) >= MAX_TILE_ID:
        raise DamagedDirectory(f"tile id {int(ids[-1])} beyond the last zoom")
    for name, column in (("run length", runs), ("length", lengths)):
        if len(column) and int(column.max()) > MAX_UINT32:
            raise DamagedDirectory(f"a {name} of {int(column.max())}, more than the spec's {MAX_UINT32}")
    tiles = runs > 0
    followed = np.flatnonzero(tiles[:-1])  # tile entries with an entry after them
    if len(followed) and not (ids[followed] + runs[followed] <= ids[followed + 1]).all():
        raise DamagedDirectory("a run reaches into the next entry")
    for name, mask, size in (("tile data", tiles, tile_data), ("leaf directories", ~tiles, leaves)):
        stops = directory.offsets[mask] + lengths[mask]
        if len(stops) and int(stops.max()) > size:
            raise DamagedDirectory(f"an entry points past the end of the {name} ({int(stops.max())} > {size} bytes)")


class DirectoryCache:
    """The directories a reader decoded last, up to ``CACHED_ENTRIES`` entries in all; safe across threads."""

    def __init__(self, limit: int = CACHED_ENTRIES) -> None:
        self.limit = limit
        self._kept: OrderedDict[tuple[int, int], Directory] = OrderedDict()
        self._entries = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> Directory | None:
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
            return found

    def put(self, key: tuple[int, int], directory: Directory) -> None:
        with self._lock:
            if key in self._kept:
                return
            self._kept[key] = directory
            self._entries += len(directory)
            while self._entries > self.limit and len(self._kept) > 1:
                self._entries -= len(self._kept.popitem(last=False)[1])
