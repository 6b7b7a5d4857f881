from __future__ import annotations

import typer

from switchboard.bootstrap import Container
from switchboard.cli.common import account_scope, console, run_with_container

accounts = typer.Typer(help="Accounts (the operator's clients).", no_args_is_help=True)
keys = typer.Typer(help="Account API keys.", no_args_is_help=True)


@accounts.command("create")
def create_account(
    slug: str = typer.Argument(..., help="Unique account slug, e.g. 'acme'."),
    name: str = typer.Option(None, help="Display name (default: the slug)."),
) -> None:
    """Create an account."""

    async def op(c: Container) -> None:
        account = await c.tenancy.create_account(slug=slug, name=name or slug)
        console.print(f"created account {account.slug} ({account.id})")

    run_with_container(op)


@keys.command("create")
def create_key(
    account: str = typer.Argument(..., help="Account slug."),
    name: str = typer.Option(None, help="A label for the key."),
) -> None:
    """Create an API key for ACCOUNT and print it (it is shown only once)."""

    async def op(c: Container) -> None:
        created = await c.tenancy.create_key(await account_scope(c, account), name=name)
        console.print(f"key id: {created.key.id}")
        console.print(created.secret, highlight=False)

    run_with_container(op)
