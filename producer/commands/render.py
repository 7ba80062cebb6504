"""``tileclass render``: a PNG of a job's or a bbox's classified tiles, in class colours with a legend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from core.errors import NotFoundError, TileclassError
from producer.commands.options import Bbox, ModelRef, Zoom

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.queries import Selection


def _narrow_to_extent(session: Session, selection: Selection, zoom: int | None) -> Selection:
    """A job drawn without a bbox covers the tiles it has: at ``zoom``, else at its zoom with the most tiles."""
    from core.queries import extents

    spans = extents(session, selection=selection)
    if zoom is not None:
        spans = [(tiles, count) for tiles, count in spans if tiles.zoom == zoom]
    if not spans:
        at = f" at zoom {zoom}" if zoom is not None else ""
        raise NotFoundError(f"nothing to draw for {selection.describe()}: it has no tiles with coordinates{at}")
    tiles, _ = max(spans, key=lambda span: (span[1], span[0].zoom))
    return selection.at(tiles)


def render(
    job: int | None = typer.Argument(None, help="Job id to draw (or give --bbox and --zoom)."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG file to write."),
    box: Bbox = None,
    zoom: Zoom = None,
    model: ModelRef = None,
    imagery: bool = typer.Option(False, "--imagery", help="Blend the colours over the tiles' own images, read "
                                 "from their root (when this host can read it)."),
    alpha: float = typer.Option(0.45, "--alpha", help="Opacity of the class colours over the imagery (0..1)."),
    max_size: int = typer.Option(2048, "--max-size", help="Longest side of the map in pixels; larger regions "
                                 "are drawn at one pixel per tile or less."),
) -> None:
    """Draw the classified map: one square per tile in its class colour, failed tiles hatched grey, a legend.

    Draws a job, or with --bbox and --zoom a region; a job without --zoom is drawn at its zoom with the most tiles.
    """
    from core.queries import iter_cells, iter_empty, iter_failures
    from core.settings import get_settings
    from producer.commands.regions import selection_for
    from producer.render import MAX_TILE_PX, PLAIN_TILE_PX, MapCanvas, compose, fit_layout, save_png
    from producer.session import open_session
    from producer.tile_images import TileImages

    if not 16 <= max_size <= 32768:
        raise TileclassError(f"--max-size must be within 16..32768 pixels (got {max_size})")
    if not 0.0 <= alpha <= 1.0:
        raise TileclassError(f"--alpha must be within 0..1 (got {alpha})")
    if out.suffix.lower() != ".png" or not out.parent.is_dir():
        raise TileclassError(f"--out must be a .png file in an existing folder (got {str(out)!r})")
    with open_session(read_only=True) as session:
        selection = selection_for(session, job=job, box=box, zoom=zoom, model=model)
        if selection.model is None:
            raise NotFoundError(f"nothing to draw for {selection.describe()}: no model has results there")
        if box is None:
            selection = _narrow_to_extent(session, selection, zoom)
        assert selection.tiles is not None
        layout = fit_layout(selection.tiles, max_size=max_size, max_px=MAX_TILE_PX if imagery else PLAIN_TILE_PX)
        canvas = MapCanvas(layout, selection.model.class_names if selection.model else ())
        canvas.add_failures(iter_failures(session, selection=selection))
        canvas.add_empty(answer.tile for answer in iter_empty(session, selection=selection))
        images = TileImages(session, get_settings()) if imagery else None
        canvas.add_cells(iter_cells(session, selection=selection), images)
    tiles = selection.tiles
    resolution = "" if layout.scale == 1 else f", 1 px ≈ {1 / layout.scale:.1f} tiles"
    title = f"{selection.describe()} · {tiles.width:,} by {tiles.height:,} tiles{resolution}"
    picture = compose(canvas, title=title, alpha=alpha)
    save_png(picture, out)
    drawn = sum(canvas.counts.values())
    width, height = layout.size
    typer.echo(f"wrote {out}: map {width}x{height} px of {tiles} ({drawn:,} classified, {canvas.failed:,} failed, "
               f"{canvas.empty:,} empty)")
    if images is not None and images.unreadable:
        typer.echo(f"{images.unreadable:,} tile images could not be read; those tiles are drawn without imagery",
                   err=True)


def register(app: typer.Typer) -> None:
    app.command("render")(render)
