"""``tileclass correct``: record a person's label for a tile, or import many from a CSV or GeoJSON file.

``tileclass correct Z/X/Y CLASS`` records one; ``tileclass correct --file corrections.csv`` (columns z, x, y, label)
or ``--file areas.geojson --zoom 17`` (polygons with a ``label`` property: the tiles they cover at that zoom)
imports many (``core.correction_files``). The label must be one of the model's classes (``--model``; default the
newest registered model); corrections are stored with their author and time beside the model's results, which they
never change. ``query tile`` shows both; ``dataset export`` trains the next model on them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core.errors import TileclassError
from producer.commands.options import Json

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from core.corrections import Recorded
    from core.models.info import ModelInfo
    from core.tiles import Tile


def correct(
    tile: Annotated[str | None, typer.Argument(metavar="Z/X/Y", help="The tile, e.g. 17/70420/42997.")] = None,
    label: Annotated[str | None, typer.Argument(
        metavar="CLASS", help="The tile's right class: one of the model's classes (case does not matter).")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", help="Import many instead: a .csv with z, x, y and label columns, or a .geojson of polygons with "
                       "a 'label' property (with --zoom). A bad row or feature imports nothing.")] = None,
    zoom: Annotated[int | None, typer.Option(
        "--zoom", "-z", help="With a GeoJSON --file: the zoom whose tiles the polygons cover are corrected.")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="The model whose classes the label is one of (name, hash or 6+ character prefix). "
                        "Default: the newest registered model.")] = None,
    author: Annotated[str | None, typer.Option(
        "--author", help="Who made the correction. Default: the operating system's user name ($USER).")] = None,
    as_json: Json = False,
) -> None:
    """Record a person's label for tile Z/X/Y (or many, with --file), beside the model's result."""
    from core.corrections import correction_model, default_author
    from producer.session import open_session

    _check_arguments(tile, label, file, zoom)
    who = author if author is not None else default_author()
    with open_session() as session:
        chosen = correction_model(session, ref=model)
        if file is not None:
            done = _import(session, chosen, file, zoom, who)
            _print_import(done, file, as_json)
        else:
            assert tile is not None and label is not None
            _one(session, chosen, tile, label, who, as_json)


def _check_arguments(tile: str | None, label: str | None, file: Path | None, zoom: int | None) -> None:
    if file is not None and tile is not None:
        raise TileclassError("give either Z/X/Y CLASS or --file, not both")
    if file is None and (tile is None or label is None):
        raise TileclassError("give a tile and its class (tileclass correct 17/70420/42997 Forest) or --file "
                             "corrections.csv")
    if file is None and zoom is not None:
        raise TileclassError("--zoom is for a GeoJSON --file: Z/X/Y names its own zoom")


def _import(session: Session, model: ModelInfo, file: Path, zoom: int | None, author: str) -> Recorded:
    from core.correction_files import read_corrections
    from core.corrections import record_corrections

    labels = read_corrections(file, model=model, zoom=zoom)
    return record_corrections(session, model=model, labels=labels, author=author, origin=file.name)


def _print_import(done: Recorded, file: Path, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"recorded": done.recorded, "unchanged": done.unchanged, "model": done.model_hash,
                               "author": done.author, "file": str(file)}))
        return
    same = f"; {done.unchanged:,} already had that label" if done.unchanged else ""
    typer.echo(f"recorded {done.recorded:,} correction{'s' if done.recorded != 1 else ''} from {file.name} by "
               f"{done.author} for model {done.model_name or done.model_hash[:12]}{same}")


def _one(session: Session, model: ModelInfo, spec: str, label: str, author: str, as_json: bool) -> None:
    from core.corrections import correct_tile
    from core.queries import tile_result
    from core.tiles import Tile

    tile = Tile.parse(spec)
    name, done = correct_tile(session, model=model, tile=tile, label=label, author=author)
    predicted = tile_result(session, tile=tile, model_hash=model.hash)
    if as_json:
        typer.echo(json.dumps({"tile": str(tile), "label": name, "recorded": done.recorded, "model": model.hash,
                               "author": author, "predicted": predicted.label if predicted else None}))
        return
    typer.echo(_one_line(tile, name, done, predicted.label if predicted else None,
                         predicted.confidence if predicted else None))


def _one_line(tile: Tile, label: str, done: Recorded, predicted: str | None, confidence: float | None) -> str:
    shown = done.model_name or done.model_hash[:12]
    was = f"model {shown} says {predicted} ({confidence:.3f})" if predicted is not None else \
        f"not classified by model {shown}"
    if not done.recorded:
        return f"{tile}: already corrected to {label}; nothing recorded ({was})"
    return f"{tile}: corrected to {label} by {done.author} ({was}; its result is kept)"


def register(app: typer.Typer) -> None:
    app.command("correct")(correct)
