from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from switchboard.bootstrap import Container
from switchboard.cli.common import account_scope, console, fail, run_with_container
from switchboard.config import cascade
from switchboard.operations.apply import ConfigApplier
from switchboard.operations.config_tree import ConfigTreeInvalid, load_tree
from switchboard.runtime.models import check_model
from switchboard.runtime.tools.registry import check_tools

# The checks registration makes beyond the schema: the same in `apply` and `apply --dry-run`.
RUNTIME_CHECKS = (check_tools, check_model)

app = typer.Typer(help="Inspect the configuration cascade.", no_args_is_help=True)


def apply(
    path: Path = typer.Argument(Path("configs"), help="The config tree to apply."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only check the tree."),
) -> None:
    """Create or update the accounts and agents of a config tree, all in one transaction.

    Layout: PATH/global.yaml, PATH/<account>/account.yaml, PATH/<account>/<agent>/config.yaml.
    Every problem (bad YAML, invalid value, misplaced or misspelt file, a tool or model that
    would not load) is reported with its file and key, and then nothing is applied.
    --dry-run makes every check apply makes, against the database too, then rolls back.
    """
    try:
        tree = load_tree(path, checks=RUNTIME_CHECKS)
    except ConfigTreeInvalid as exc:
        fail(f"{path}: nothing applied", problems=[str(p) for p in exc.problems])

    async def op(c: Container) -> None:
        report = await ConfigApplier(c.uow, agents=c.agents).apply(tree, dry_run=dry_run)
        verb = f"{path} is valid; apply would change" if dry_run else f"applied {path}:"
        console.print(
            f"{verb} accounts {len(report.accounts_created)} created, "
            f"{len(report.accounts_updated)} updated; agents {len(report.agents_created)} "
            f"created, {len(report.agents_updated)} updated"
        )

    run_with_container(op)


@app.command("explain")
def explain(
    target: str = typer.Argument(..., metavar="ACCOUNT/AGENT"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show an agent's effective config and where each value came from."""
    account_slug, _, agent_slug = target.partition("/")
    if not account_slug or not agent_slug:
        fail("expected ACCOUNT/AGENT, e.g. 'acme/support'")

    async def op(c: Container) -> list[tuple[str, object, str]]:
        scope = await account_scope(c, account_slug)
        return cascade.explain((await c.agents.resolve(scope, agent_slug)).merged)

    rows = run_with_container(op)
    if as_json:
        print(json.dumps([{"key": k, "value": v, "source": s} for k, v, s in rows], indent=2))
        return
    table = Table(title=f"effective config of {target}")
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", overflow="fold")
    for key, value, source in rows:
        table.add_row(key, json.dumps(value), source)
    console.print(table)
