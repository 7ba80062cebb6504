"""Bounded decompression: a gzip stream is inflated only up to a limit, so a small input that claims gigabytes
(a "gzip bomb") is refused after ``limit + 1`` bytes of output, never allocated whole.

Every gzip stream tileclass inflates itself goes through ``gunzip``: PMTiles tiles and directories. (HTTP bodies
are inflated by httpx while they stream, and ``core.sources.fetch`` stops at its size cap after each piece.)
"""

from __future__ import annotations

import zlib

GZIP_ONLY = 16 + zlib.MAX_WBITS  # wbits for a gzip header and trailer, as gzip.decompress reads them
STEP = 1 << 20  # inflated a piece at a time: a refused stream costs at most its limit, never twice that


class TooLarge(ValueError):
    """The stream inflates to more than the limit."""


class Damaged(ValueError):
    """The stream is not gzip, or it ends before its end marker."""


def gunzip(data: bytes | memoryview, *, limit: int, what: str = "data") -> bytes:
    """``data`` (one or more gzip members, as ``gzip.decompress`` reads them) inflated, at most ``limit`` bytes.

    Raises:
        TooLarge: it inflates to more than ``limit`` bytes (no more than ``limit + 1`` of them were made).
        Damaged: it is not a complete gzip stream.
    """
    pieces: list[bytes] = []
    size, rest = 0, memoryview(data)
    while rest:
        inflater = zlib.decompressobj(GZIP_ONLY)
        while not inflater.eof:
            try:
                piece = inflater.decompress(rest, min(STEP, limit - size + 1))
            except zlib.error as exc:
                raise Damaged(f"damaged gzip {what} ({exc})") from None
            rest = memoryview(inflater.unconsumed_tail)
            if not piece and not rest:
                raise Damaged(f"damaged gzip {what} (it ends before its end marker)")
            size += len(piece)
            if size > limit:
                raise TooLarge(f"{what} inflates to more than {limit} bytes")
            pieces.append(piece)
        rest = memoryview(inflater.unused_data)  # the next member, if any
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)  # one piece (a small tile): no copy
