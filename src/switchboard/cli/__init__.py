"""The ``switchboard`` command line. Every command is an entrypoint like a router: it calls
services and never touches a session itself."""

from __future__ import annotations

import typer

from switchboard.cli import (
    admin,
    config,
    db,
    directory,
    discuss,
    fake,
    ledger,
    mcp,
    registry,
    serve,
    usage,
)

app = typer.Typer(
    name="switchboard",
    help="Switchboard: a multi-tenant LLM agent server with an exact cost ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("serve")(serve.serve)
app.command("apply")(config.apply)
app.command("fake-provider")(fake.fake_provider)
app.command("usage")(usage.usage)
app.command("discuss")(discuss.discuss)
app.command("mcp")(mcp.mcp)
app.add_typer(db.app, name="db")
app.add_typer(config.app, name="config")
app.add_typer(registry.app, name="registry")
app.add_typer(admin.accounts, name="accounts")
app.add_typer(admin.keys, name="keys")
app.add_typer(directory.app, name="directory")
app.add_typer(ledger.app, name="ledger")


def main() -> None:
    app()
