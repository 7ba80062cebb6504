"""``tileclass groups add NAME FILE --model MODEL``, ``groups list``, ``groups remove NAME``: class groupings.

A grouping maps a model's classes to the categories a user cares about (``core.class_groups``); once added it is
usable as ``--groups NAME`` in ``summary``, ``export`` and ``vectorize``, and as ``?groups=NAME`` in the overlay.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from producer.commands.options import Json

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The grouping's name (letters, digits, '.', '_', '-').")]
app = typer.Typer(help="Class groupings: a model's classes gathered into the categories you care about.",
                  no_args_is_help=True)


@app.command("add")
def add(name: NameArg,
        file: Annotated[Path, typer.Argument(metavar="FILE", help='JSON: {"group": ["class", ...], ...}; a class in '
                                                                  'no group is in "other".')],
        model: Annotated[str, typer.Option("--model", help="The model whose classes FILE names: a checkpoint (.pt, "
                                                           "registered on the way), a name, hash or hash prefix.")],
        as_json: Json = False) -> None:
    """Register a groups file as NAME for MODEL."""
    from core.class_groups import add_grouping
    from core.models.registry import resolve_model
    from core.settings import get_settings
    from producer.session import open_session

    with open_session() as session:
        digest = resolve_model(session, ref=model, settings=get_settings())
        grouping = add_grouping(session, name=name, model_ref=digest, path=file)
    if as_json:
        typer.echo(json.dumps(grouping.as_dict(), indent=2))
        return
    typer.echo(f"grouping {grouping.name!r} for model {grouping.model_sha256[:12]}:")
    for group, labels in grouping.pairs:
        typer.echo(f"  {group}: {', '.join(labels) or '-'}")


@app.command("list")
def list_(as_json: Json = False) -> None:
    """The registered groupings, by name, with their model and groups."""
    from core.class_groups import list_groupings
    from producer.session import open_session

    with open_session(read_only=True) as session:
        groupings = list_groupings(session)
    if as_json:
        typer.echo(json.dumps([grouping.as_dict() for grouping in groupings], indent=2))
        return
    if not groupings:
        typer.echo("no groupings: 'tileclass groups add NAME FILE --model MODEL' registers one")
        return
    typer.echo(f"{'name':<20} {'model':<12}  groups")
    for grouping in groupings:
        typer.echo(f"{grouping.name:<20} {grouping.model_sha256[:12]}  {', '.join(grouping.groups)}")


@app.command("remove")
def remove(name: NameArg, as_json: Json = False) -> None:
    """Remove a grouping (results are not touched)."""
    from core.class_groups import remove_grouping
    from producer.session import open_session

    with open_session() as session:
        removed = remove_grouping(session, name=name)
    typer.echo(json.dumps({"name": removed.name, "removed": True}) if as_json else
               f"grouping {removed.name!r} removed")


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="groups")
