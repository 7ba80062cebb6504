"""Draw a classified region with Pillow: each tile in its class colour, failed tiles hatched, empty tiles in slate,
a legend.

The map is a grid of cells, one per tile when the region fits in ``max_size`` pixels (each cell then ``px``
pixels wide: at most 256, a tile's own size, over imagery, and 48 without), else one cell per ``1/scale`` tiles,
so that a region of millions of tiles still draws at ``max_size`` pixels: one pixel per tile or less. Cells hold
codes (0 no result, 1 failed, 2+i class i of the model) in a numpy array; a lookup table colours them at the end.

Colours are keyed by the class's position in the model's class list (``core.palette``, which the HTTP server's
map overlay shares), so a class keeps its colour across runs, regions and views.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.bbox import TileRange
from core.palette import class_colour
from core.queries import MapCell, TileFailure
from core.tiles import Tile

log = logging.getLogger(__name__)

NO_RESULT = (0xFF, 0xFF, 0xFF)
FAILED = (0xDD, 0xDD, 0xDD)
HATCH = (0x66, 0x66, 0x66)
EMPTY_TILE = (0xB8, 0xC4, 0xCC)  # slate: a tile with nothing to classify, apart from every class colour
NO_RESULT_CODE, FAILED_CODE, EMPTY_TILE_CODE = 0, 1, 2
FIRST_CLASS_CODE = 3
MAX_TILE_PX = 256  # a tile's own size: the most worth drawing over imagery
PLAIN_TILE_PX = 48  # without imagery a cell needs only to be seen and counted
MIN_IMAGERY_PX = 8
CHUNK = 8192
MARGIN, TITLE_HEIGHT = 16, 40  # the map's top-left corner on the sheet is (MARGIN, TITLE_HEIGHT)

ImageSource = Callable[[MapCell], Image.Image | None]


@dataclass(frozen=True, slots=True)
class MapLayout:
    """Where each tile of ``tiles`` lands: cell = floor(offset * scale), each cell ``px`` pixels square."""

    tiles: TileRange
    scale: float
    px: int
    columns: int
    rows: int

    @property
    def size(self) -> tuple[int, int]:
        return self.columns * self.px, self.rows * self.px


def fit_layout(tiles: TileRange, *, max_size: int, max_px: int = MAX_TILE_PX) -> MapLayout:
    """One cell per tile, as large as fits ``max_size`` (at most ``max_px``); else several tiles per pixel."""
    longest = max(tiles.width, tiles.height)
    if longest <= max_size:
        return MapLayout(tiles, 1.0, max(1, min(max_px, max_size // longest)), tiles.width, tiles.height)
    scale = max_size / longest
    columns, rows = (min(max_size, math.ceil(n * scale)) for n in (tiles.width, tiles.height))
    return MapLayout(tiles, scale, 1, columns, rows)


def _upscale(grid: np.ndarray, px: int) -> np.ndarray:
    return np.repeat(np.repeat(grid, px, axis=0), px, axis=1) if px > 1 else grid


def _stripes(shape: tuple[int, ...]) -> np.ndarray:
    """Diagonal hatching: 2 pixels of every 8 along the anti-diagonals."""
    height, width = shape
    return (np.arange(height, dtype=np.int32)[:, None] + np.arange(width, dtype=np.int32)[None, :]) % 8 < 2


class MapCanvas:
    """Collects a region's results and failures into cells, then draws the map with its legend."""

    def __init__(self, layout: MapLayout, class_names: Sequence[str]) -> None:
        self.layout = layout
        self.labels = list(class_names)
        self.codes = {name: i + FIRST_CLASS_CODE for i, name in enumerate(self.labels)}
        self.grid = np.zeros((layout.rows, layout.columns), dtype=np.uint32)
        self.counts: Counter[str] = Counter()
        self.failed = 0
        self.empty = 0
        self.imagery: Image.Image | None = None
        self.pasted = np.zeros((layout.rows, layout.columns), dtype=bool)

    def _place(self, xs: list[int], ys: list[int], codes: list[int]) -> None:
        tiles, scale = self.layout.tiles, self.layout.scale
        cols = ((np.asarray(xs) - tiles.min_x) * scale).astype(np.int64)
        rows = ((np.asarray(ys) - tiles.min_y) * scale).astype(np.int64)
        inside = (cols >= 0) & (cols < self.layout.columns) & (rows >= 0) & (rows < self.layout.rows)
        self.grid[rows[inside], cols[inside]] = np.asarray(codes, dtype=np.uint32)[inside]

    def add_failures(self, failures: Iterable[TileFailure]) -> None:
        self.failed += self._add_tiles((failure.tile for failure in failures), FAILED_CODE)

    def add_empty(self, tiles: Iterable[Tile]) -> None:
        """Place tiles found empty (before results, so a result wins a shared cell)."""
        self.empty += self._add_tiles(tiles, EMPTY_TILE_CODE)

    def _add_tiles(self, tiles: Iterable[Tile], code: int) -> int:
        xs: list[int] = []
        ys: list[int] = []
        for tile in tiles:
            if tile.x is None or tile.y is None:
                continue
            xs.append(tile.x)
            ys.append(tile.y)
        self._place(xs, ys, [code] * len(xs))
        return len(xs)

    def add_cells(self, cells: Iterable[MapCell], images: ImageSource | None = None) -> None:
        """Place results (after failures, so a result wins a shared cell); paste their imagery if given."""
        if images is not None and (self.layout.scale < 1 or self.layout.px < MIN_IMAGERY_PX):
            log.warning("imagery skipped: tiles are drawn at %s px, fewer than %d", self.layout.px, MIN_IMAGERY_PX)
            images = None
        xs: list[int] = []
        ys: list[int] = []
        codes: list[int] = []
        for cell in cells:
            code = self.codes.get(cell.label)
            if code is None:  # a label outside the model's list: give it the next colour
                self.labels.append(cell.label)
                code = self.codes[cell.label] = len(self.labels) + FIRST_CLASS_CODE - 1
            x, y = _column_row(cell)
            xs.append(x)
            ys.append(y)
            codes.append(code)
            self.counts[cell.label] += 1
            if images is not None:
                self._paste(cell, images)
            if len(xs) >= CHUNK:
                self._place(xs, ys, codes)
                xs, ys, codes = [], [], []
        self._place(xs, ys, codes)

    def _paste(self, cell: MapCell, images: ImageSource) -> None:
        picture = images(cell)
        if picture is None:
            return
        if self.imagery is None:
            self.imagery = Image.new("RGB", self.layout.size, NO_RESULT)
        px, tiles = self.layout.px, self.layout.tiles
        tile_image = picture.convert("RGB").resize((px, px), Image.Resampling.BILINEAR)
        x, y = _column_row(cell)
        self.imagery.paste(tile_image, ((x - tiles.min_x) * px, (y - tiles.min_y) * px))
        self.pasted[y - tiles.min_y, x - tiles.min_x] = True

    def draw_map(self, *, alpha: float = 0.5) -> Image.Image:
        """The map alone: class colours (blended over imagery where pasted), failed cells hatched."""
        lut = np.array([NO_RESULT, FAILED, EMPTY_TILE] + [class_colour(i) for i in range(len(self.labels))],
                       dtype=np.uint8)
        pixels = lut[_upscale(self.grid, self.layout.px)]
        if self.imagery is not None:
            below = np.asarray(self.imagery, dtype=np.float32)
            blended = ((1 - alpha) * below + alpha * pixels).astype(np.uint8)
            pasted = _upscale(self.pasted, self.layout.px)
            pixels[pasted] = blended[pasted]
        if self.failed:
            pixels[_upscale(self.grid == FAILED_CODE, self.layout.px) & _stripes(pixels.shape[:2])] = HATCH
        return Image.fromarray(pixels, "RGB")

    def legend(self) -> list[tuple[tuple[int, int, int] | None, str]]:
        """Legend rows: (colour or None for the hatch swatch, text), classes in the model's order."""
        total = sum(self.counts.values())
        rows: list[tuple[tuple[int, int, int] | None, str]] = [
            (class_colour(i), f"{label}  {self.counts[label]:,}  ({self.counts[label] / total:.1%})")
            for i, label in enumerate(self.labels) if self.counts[label]
        ]
        if self.failed:
            rows.append((None, f"failed  {self.failed:,}"))
        if self.empty:
            rows.append((EMPTY_TILE, f"empty  {self.empty:,}"))
        if int((self.grid == NO_RESULT_CODE).sum()):
            rows.append((NO_RESULT, "no result"))
        return rows


def compose(canvas: MapCanvas, *, title: str, alpha: float = 0.5) -> Image.Image:
    """The map with a title above and the legend to its right (larger text beside a larger map)."""
    picture = canvas.draw_map(alpha=alpha)
    legend = canvas.legend()
    scale = min(max(picture.height / 700, 1.0), 2.5)
    font = ImageFont.load_default(size=min(round(15 * scale), 22))  # the title stays within TITLE_HEIGHT
    small = ImageFont.load_default(size=round(13 * scale))
    margin, title_height, swatch, line = MARGIN, TITLE_HEIGHT, round(18 * scale), round(26 * scale)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_width = max([int(probe.textlength(text, font=small)) for _, text in legend] + [0])
    width = max(margin + picture.width + 2 * margin + swatch + 8 + text_width + margin,
                int(probe.textlength(title, font=font)) + 2 * margin)
    height = title_height + max(picture.height, len(legend) * line) + margin
    sheet = Image.new("RGB", (width, height), (0xFF, 0xFF, 0xFF))
    draw = ImageDraw.Draw(sheet)
    draw.text((margin, title_height // 2), title, fill=(0x22, 0x22, 0x22), font=font, anchor="lm")
    sheet.paste(picture, (margin, title_height))
    draw.rectangle([margin - 1, title_height - 1, margin + picture.width, title_height + picture.height],
                   outline=(0x99, 0x99, 0x99))
    left = margin + picture.width + 2 * margin
    for i, (colour, text) in enumerate(legend):
        top = title_height + i * line
        box = [left, top, left + swatch, top + swatch]
        if colour is None:
            hatch = np.full((swatch, swatch, 3), FAILED, dtype=np.uint8)
            hatch[_stripes((swatch, swatch))] = HATCH
            sheet.paste(Image.fromarray(hatch, "RGB"), (left, top))
        else:
            draw.rectangle(box, fill=colour)
        draw.rectangle(box, outline=(0x88, 0x88, 0x88))
        draw.text((left + swatch + 8, top + swatch // 2), text, fill=(0x22, 0x22, 0x22), font=small, anchor="lm")
    return sheet


def save_png(image: Image.Image, out: Path) -> None:
    """Write ``image`` as ``out`` through a temporary file, so a failure leaves no half-written picture."""
    partial = out.with_name(out.name + ".partial")
    image.save(partial, format="PNG", optimize=True)
    partial.replace(out)


def _column_row(cell: MapCell) -> tuple[int, int]:
    _, x, y = cell.tile.xyz()  # map cells are results with coordinates
    return x, y
