"""``tileclass db``: manage the results database's schema."""

from __future__ import annotations

import typer


def upgrade(
    revision: str = typer.Option("head", help="Alembic revision to upgrade to."),
) -> None:
    """Create or upgrade the results database (TILECLASS_DATABASE_URL) to the newest schema."""
    from core.migrate import upgrade as run_upgrade
    from core.settings import get_settings

    url = get_settings().database_url
    run_upgrade(url, revision)
    typer.echo(f"database at {_redacted(url)} is at revision {revision}")


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def register(app: typer.Typer) -> None:
    db = typer.Typer(help="Manage the results database's schema.", no_args_is_help=True)
    db.command("upgrade")(upgrade)
    app.add_typer(db, name="db")
