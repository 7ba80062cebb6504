"""``tileclass models``: the registered models, newest first; ``models show|name|remove MODEL`` for one of them.

MODEL is a name, a hash, or a unique hash prefix of six or more characters, as everywhere a model is taken.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from producer.commands.options import Json

ModelArg = Annotated[str, typer.Argument(metavar="MODEL", help="A model's name, hash or unique hash prefix (6+).")]
app = typer.Typer(help="The registered models: list them, show one, name one, remove one.")


@app.callback(invoke_without_command=True)
def models(ctx: typer.Context, as_json: Json = False) -> None:
    """List the registered models, newest first: hash, name, architecture, classes, size, accuracy, results."""
    if ctx.invoked_subcommand is not None:
        return
    from core.models.lookups import list_models
    from producer.session import open_session

    with open_session(read_only=True) as session:
        rows = list_models(session)
    if as_json:
        typer.echo(json.dumps([row.as_dict() for row in rows], indent=2))
        return
    typer.echo(f"{'model':<12}  {'name':<20} {'arch':<10} {'classes':>7} {'size':>5} {'val acc':>7}  "
               f"{'registered':<16} {'results':>10}")
    for row in rows:
        accuracy = f"{row.val_accuracy:.1%}" if row.val_accuracy is not None else "-"
        typer.echo(f"{row.hash[:12]}  {row.name or '-':<20} {row.arch:<10} {len(row.class_names):>7} "
                   f"{row.image_size:>5} {accuracy:>7}  {row.created_at:%Y-%m-%d %H:%M} {row.results:>10,}")
    if not rows:
        typer.echo("no models registered: 'tileclass train' makes one, 'tileclass enqueue --model FILE.pt' "
                   "registers one")


@app.command("show")
def show(model: ModelArg, as_json: Json = False) -> None:
    """One model in full: the list's columns, its classes, training config and where its metrics are."""
    from core.models.lookups import find_model
    from producer.session import open_session

    with open_session(read_only=True) as session:
        data = find_model(session, ref=model, count_results=True).as_dict(full=True)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key in ("hash", "name", "arch", "image_size", "val_accuracy", "temperature", "registered_at", "results",
                "path", "metrics_path"):
        typer.echo(f"{key:<14} {data[key] if data[key] is not None else '-'}")
    typer.echo(f"{'classes':<14} {', '.join(data['class_names'])}")
    config = data["train_config"]
    typer.echo(f"{'train_config':<14} {json.dumps(config, sort_keys=True) if config else '-'}")


@app.command("name")
def name(model: ModelArg, new_name: Annotated[str, typer.Argument(metavar="NAME", help="The model's new name.")],
         as_json: Json = False) -> None:
    """Give a model a unique name, usable wherever a model is taken (--model NAME)."""
    from core.models.manage import name_model
    from producer.session import open_session

    with open_session() as session:
        digest = name_model(session, ref=model, name=new_name).hash
    typer.echo(json.dumps({"hash": digest, "name": new_name}) if as_json else f"model {digest[:12]} is now "
               f"{new_name!r}")


@app.command("remove")
def remove(model: ModelArg, as_json: Json = False) -> None:
    """Unregister a model no job or result refers to (its checkpoint files are left in place)."""
    from core.models.manage import remove_model
    from producer.session import open_session

    with open_session() as session:
        removed = remove_model(session, ref=model)
    typer.echo(json.dumps({"hash": removed.hash, "removed": True}) if as_json else
               f"model {removed.hash[:12]} unregistered; its checkpoint stays at {removed.path}")


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="models")
