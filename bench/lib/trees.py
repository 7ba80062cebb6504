"""Trees of empty tile files that the listing benchmarks walk (bench.enqueue, bench.sources): ``size`` tiles in
z/x/y columns of 500 at zoom 16 under /tmp/tileclass-bench-enqueue, built once and kept (with a marker) for the
next run."""

from __future__ import annotations

import os
import time
from pathlib import Path

BENCH_DIR = Path("/tmp/tileclass-bench-enqueue")
ZOOM, ROWS, FIRST_X, FIRST_Y = 16, 500, 30000, 20000


def build_tree(size: int) -> Path:
    """``size`` empty tiles in ``size / 500`` columns of 500 rows at zoom 16, built once."""
    root = BENCH_DIR / f"tree-{size}"
    marker = root / ".complete"
    if marker.exists():
        return root
    started = time.perf_counter()
    for column in range(-(-size // ROWS)):
        folder = root / str(ZOOM) / str(FIRST_X + column)
        folder.mkdir(parents=True, exist_ok=True)
        for row in range(min(ROWS, size - column * ROWS)):
            os.close(os.open(folder / f"{FIRST_Y + row}.png", os.O_CREAT | os.O_WRONLY, 0o644))
    marker.write_text(str(size))
    if size > 1:
        print(f"built {size:,} tiles in {time.perf_counter() - started:.1f} s under {root}")
    return root
