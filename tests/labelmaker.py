"""Stand-ins for label-maker's fixture tiles, built at test time: the real tiles are Mapbox Satellite imagery, which
may not be redistributed, so these keep their coordinates and their ``{x}-{y}-{z}`` file naming (a real-world
layout that is not z/x/y) and show real EuroSAT patches of the tests' subset, enlarged to 256 px: Residential and
Highway ones, as label-maker's region is mostly buildings and roads (and their texture shows through a map's colour).

The z17 set is the 3 x 3 block of tiles around lon -9.455, lat 38.849 (Sintra, Portugal) with one grid cell
missing, as label-maker's ``config.integration.json`` region gives it; the z12 set is 12 tiles of 4 x 3.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tests.conftest import EUROSAT

CONFIG_BBOX = (-9.4575, 38.8467, -9.4510, 38.8513)  # label-maker's config.integration.json
MISSING_Z17 = (62092, 50162)  # the block's one cell without a tile
Z17 = [(x, y) for x in range(62092, 62095) for y in range(50162, 50165) if (x, y) != MISSING_Z17]
Z12 = [(x, y) for x in range(2060, 2064) for y in range(1976, 1979)]
LOOKS = ("Residential", "Highway")


def labelmaker_tiles(folder: Path, *, zoom: int = 17) -> Path:
    """Write the zoom's tiles as ``folder/{x}-{y}-{z}.jpg`` (z17) or ``.png`` (z12), each a different real EuroSAT
    patch (held-out numbers 500 and up) enlarged to 256 px; returns ``folder``."""
    cells, extension = (Z17, "jpg") if zoom == 17 else (Z12, "png")
    folder.mkdir(parents=True, exist_ok=True)
    for i, (x, y) in enumerate(cells):
        name = LOOKS[i % len(LOOKS)]
        with Image.open(EUROSAT / name / f"{name}_{500 + i // len(LOOKS)}.jpg") as patch:
            picture = patch.convert("RGB").resize((256, 256), Image.Resampling.BICUBIC)
        picture.save(folder / f"{x}-{y}-{zoom}.{extension}", **({"quality": 90} if extension == "jpg" else {}))
    return folder
