"""The contact sheet of an assessment sample (``tileclass assess sample --out DIR``): ``DIR/index.html``.

Each sampled tile's imagery, numbered in review order, with its z/x/y and nothing else: no map class, so the
person giving reference labels is not biased by what the map says. Images are read from the job's source on this
host, as ``dataset export`` reads them (``source.reader(settings)``), and copied into ``DIR/tiles/`` (JPEG, PNG and
WebP as they are, others as PNG), so the page opens offline and keeps working if the source moves. A tile that
cannot be read shows why in its place.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

from core.assessment.store import SampleTile
from core.sources import TileAbsent, TileReader, TileUnreadable
from core.tiles import Tile
from producer.dataset import image_file

TILES = "tiles"
_WRITTEN = re.compile(r"\d+\.(jpg|png|webp)")

_STYLE = """body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px}
figure{margin:0;border:1px solid #ccc;padding:4px}figure img{width:100%;image-rendering:pixelated;display:block}
figcaption{font:13px monospace;padding-top:4px}.missing{aspect-ratio:1;background:#eee;display:flex;
align-items:center;justify-content:center;text-align:center;color:#a00;padding:8px}code{background:#f3f3f3}"""


def write_sheet(out: Path, tiles: Sequence[SampleTile], reader: TileReader, *, job_id: int, classes: Sequence[str],
                max_pixels: int) -> int:
    """Write ``out/index.html`` and ``out/tiles/``; returns how many tiles could not be read."""
    folder = out / TILES
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():  # a previous sheet's images: a sample drawn again has other tiles
        if _WRITTEN.fullmatch(old.name):
            old.unlink()
    figures, unreadable = [], 0
    for tile in tiles:
        image = _image(reader, tile, max_pixels)
        if isinstance(image, str):
            unreadable += 1
            picture = f'<div class="missing">no image: {html.escape(image)}</div>'
        else:
            data, extension = image
            name = f"{tile.position:05d}.{extension}"
            (folder / name).write_bytes(data)
            picture = f'<img src="{TILES}/{name}" alt="sample tile {tile.position}" loading="lazy">'
        figures.append(f'<figure id="t{tile.position}">{picture}<figcaption>{tile.position}. '
                       f"{tile.z}/{tile.x}/{tile.y}</figcaption></figure>")
    (out / "index.html").write_text(_page(job_id, classes, len(tiles), figures), encoding="utf-8")
    return unreadable


def _image(reader: TileReader, tile: SampleTile, max_pixels: int) -> tuple[bytes, str] | str:
    try:
        return image_file(reader.read(Tile(tile.z, tile.x, tile.y)), max_pixels=max_pixels)
    except (TileUnreadable, TileAbsent) as exc:
        return exc.reason


def _page(job_id: int, classes: Sequence[str], count: int, figures: list[str]) -> str:
    names = ", ".join(f"<code>{html.escape(name)}</code>" for name in classes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Assessment sample of job {job_id}</title>
<style>{_STYLE}</style></head><body>
<h1>Assessment sample of job {job_id}: {count} tiles</h1>
<p>Give each tile the class you see on the ground, from its imagery alone: write it in the <code>reference</code>
column of <code>sample.csv</code> (the tiles are in the same order), one of {names}. Then record them with
<code>tileclass assess label {job_id} sample.csv</code>. The map's own class is left out on purpose.</p>
<div class="grid">
{chr(10).join(figures)}
</div></body></html>
"""
