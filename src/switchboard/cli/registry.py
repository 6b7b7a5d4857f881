from __future__ import annotations

import json
from pathlib import Path

import typer

from switchboard.bootstrap import Container
from switchboard.cli.common import account_scope, console, fail, run_with_container

app = typer.Typer(help="The agent registry.", no_args_is_help=True)


@app.command("import")
def import_file(
    file: Path = typer.Argument(..., help="A legacy registry: a JSON list of agent profiles."),
    account: str = typer.Option(..., "--account", "-a", help="The account to import into."),
) -> None:
    """Import a legacy registry file in one transaction: all entries, or none."""
    try:
        entries = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {exc}")
    except json.JSONDecodeError as exc:
        fail(f"{file} is not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}")
    if not isinstance(entries, list):
        fail(f"{file} must hold a JSON list of agent profiles")

    async def op(c: Container) -> int:
        created = await c.agents.import_legacy(await account_scope(c, account), entries)
        return len(created)

    console.print(f"imported {run_with_container(op)} agents into {account}")
