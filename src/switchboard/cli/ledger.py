"""``switchboard ledger reconcile``: the ledger against a provider's own counters."""

from __future__ import annotations

import httpx
import typer
from rich.table import Table

from switchboard.bootstrap import Container
from switchboard.cli.common import account_scope, console, fail, run_with_container
from switchboard.ledger.reconcile import Reconciliation, reconcile
from switchboard.money import nano_to_usd_str

app = typer.Typer(help="The cost ledger: reconciliation.", no_args_is_help=True)


async def reconcile_with(
    container: Container,
    stats_url: str,
    *,
    accounts: list[str] | None = None,
    provider: str | None = None,
) -> Reconciliation:
    """Fetch the provider's ``/_stats`` and compare it with the ledger (of ``accounts``, all by
    default; of the provider named ``provider`` in config, every one by default)."""
    account_ids = (
        [(await account_scope(container, slug)).id for slug in accounts] if accounts else None
    )
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(stats_url)
        response.raise_for_status()
        stats = response.json()
    totals = await container.ledger.totals(account_ids=account_ids, provider=provider)
    return reconcile(totals, stats)


@app.command("reconcile")
def reconcile_command(
    provider_stats: str = typer.Option(
        ..., "--provider-stats", help="The provider's counters, e.g. http://127.0.0.1:9100/_stats"
    ),
    account: list[str] = typer.Option(None, "--account", help="Only this account (repeatable)."),
    provider: str = typer.Option(None, "--provider", help="Only calls to this provider name."),
) -> None:
    """Compare the ledger's calls and tokens with the provider's own counters; exit code 1 if
    they differ. Estimated and partial usage is listed apart."""

    async def op(c: Container) -> Reconciliation:
        try:
            return await reconcile_with(
                c, provider_stats, accounts=account or None, provider=provider
            )
        except httpx.HTTPError as exc:
            fail(f"cannot read the provider's counters at {provider_stats}: {exc}")

    report = run_with_container(op)
    table = Table("", "ledger", "provider", "difference", title="ledger vs provider")
    for line in report.lines:
        provider_value = "-" if line.provider is None else str(line.provider)
        difference = "" if line.provider is None else str(line.ledger - line.provider)
        style = "bold red" if line.differs else None
        table.add_row(line.what, str(line.ledger), provider_value, difference, style=style)
    console.print(table)
    console.print(
        f"cost measured {nano_to_usd_str(report.measured_cost_nano_usd)} USD, "
        f"estimated {nano_to_usd_str(report.estimated_cost_nano_usd)} USD"
    )
    if not report.ok:
        fail(f"{len(report.differences)} difference(s) between the ledger and the provider")
    console.print("[green]the ledger agrees with the provider[/]")
