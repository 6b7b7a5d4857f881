from __future__ import annotations

import typer

from switchboard.cli.common import console, fail
from switchboard.db.engine import ensure_sqlite_directory
from switchboard.db.migrate import current_revision, head_revision, upgrade
from switchboard.settings import Settings

app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command(
    revision: str = typer.Argument("head", help="Target revision (default: the latest)."),
) -> None:
    """Apply migrations to SWITCHBOARD_DATABASE_URL (SQLite or PostgreSQL)."""
    settings = Settings()
    ensure_sqlite_directory(settings.database_url)
    try:
        upgrade(settings.database_url, revision)
    except OSError as exc:
        fail(f"cannot reach the database: {exc}")
    console.print(f"database at revision {current_revision(settings.database_url)}")


@app.command("current")
def current_command() -> None:
    """Show the database's revision and the latest one this version ships."""
    settings = Settings()
    console.print(f"current: {current_revision(settings.database_url)}  head: {head_revision()}")
