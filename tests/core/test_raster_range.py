"""The value range a GeoTIFF of data that is not 8-bit is scaled from: found within a bound whatever the raster's size
(a 200,000 px square float32 raster without overviews took 1.3 GB to preview whole), and still the data's own range
when it comes from a sample of blocks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.sources import raster
from tests.conftest import REPO_ROOT

# Opens the raster as the producer does and prints how far its peak memory rose (ru_maxrss is in KiB on Linux).
MEASURE = """
import resource, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import rasterio
from core.sources.raster import RasterFile
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
scale = RasterFile(Path(sys.argv[2])).scale
print(scale[0], scale[1], (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def huge_sparse_raster(path: Path, side: int = 200_000) -> Path:
    """A ``side`` px square float32 GeoTIFF without overviews, its blocks absent but a few (about 7 MB on disk)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    with rasterio.open(path, "w", driver="GTiff", width=side, height=side, count=1, dtype="float32",
                       crs="EPSG:3857", transform=from_origin(0, side, 1.0, 1.0), tiled=True, blockxsize=256,
                       blockysize=256, compress="deflate", sparse_ok=True, BIGTIFF="YES", nodata=-9999) as out:
        for step in range(8):
            start = side * step // 8 // 256 * 256
            out.write(np.full((1, 256, 256), 100.0 + step, dtype="float32"), window=Window(start, start, 256, 256))
    return path


def test_a_huge_raster_without_overviews_gets_its_range_in_bounded_memory(tmp_path: Path) -> None:
    path = huge_sparse_raster(tmp_path / "huge.tif")
    # GDAL's block cache is set, so the bound does not depend on this machine's memory (its default is 5 % of it).
    measured = subprocess.run([sys.executable, "-c", MEASURE, str(REPO_ROOT), str(path)], capture_output=True,
                              text=True, timeout=300, env={"GDAL_CACHEMAX": "1024", "PATH": "/usr/bin:/bin"})
    assert measured.returncode == 0, measured.stderr
    low, high, grown = measured.stdout.split()
    assert float(low) < float(high)
    assert int(grown) < 400, f"opening the raster took {grown} MiB more"  # the whole preview took over 1,200


def test_a_sampled_range_is_the_datas_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rasterio
    from rasterio.transform import from_origin

    side = 2048
    ramp = np.add.outer(np.arange(side), np.arange(side)).astype("float32")
    values = 10 + 990 * ramp / ramp.max()  # 10 in the north-west corner .. 1000 in the south-east one
    path = tmp_path / "ramp.tif"
    with rasterio.open(path, "w", driver="GTiff", width=side, height=side, count=1, dtype="float32",
                       crs="EPSG:3857", transform=from_origin(0, side, 1.0, 1.0), tiled=True, blockxsize=256,
                       blockysize=256) as out:
        out.write(values[None])
    monkeypatch.setattr(raster, "PREVIEW_PIXELS", 512 * 512)  # as if it were too big to preview whole
    with rasterio.open(path) as dataset:
        windows = raster._sample_windows(dataset)
        assert len(windows) == 8 * 8  # one window a block here: the grid's 16 x 16 cells share them
        assert all(w.col_off % 256 == w.row_off % 256 == 0 and w.width == w.height == 256 for w in windows)
    low, high = raster.RasterFile(path).scale or (None, None)
    assert 10 <= low < 60 and 950 < high <= 1000
