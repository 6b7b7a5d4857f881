"""``switchboard ledger reconcile``: the ledger against a provider's own counters;
``switchboard ledger rollup verify|rebuild``: the per-day usage rollup against the ledger."""

from __future__ import annotations

import uuid

import httpx
import typer
from rich.table import Table

from switchboard.bootstrap import Container
from switchboard.cli.common import account_scope, console, fail, run_with_container
from switchboard.ledger.reconcile import Reconciliation, reconcile
from switchboard.ledger.rollup import RollupCheck
from switchboard.money import nano_to_usd_str

app = typer.Typer(
    help="The cost ledger: reconciliation with a provider, the per-day usage rollup.",
    no_args_is_help=True,
)
rollup_app = typer.Typer(
    help="The per-day usage rollup (usage_daily) that reports and the console read: verify it "
    "against the ledger, or rebuild it from the ledger.",
    no_args_is_help=True,
)
app.add_typer(rollup_app, name="rollup")
SHOWN = 200  # differing counters listed at most


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


async def _account_ids(container: Container, accounts: list[str] | None) -> list[uuid.UUID] | None:
    if not accounts:
        return None
    return [(await account_scope(container, slug)).id for slug in accounts]


def _report(check: RollupCheck) -> None:
    """Print the comparison; exit code 1 when the rollup differs from the ledger."""
    if not check.mismatches:
        console.print(f"[green]rollup equals the ledger: {check.rows} rows[/]")
        return
    table = Table(
        "day", "account/agent", "provider:model", "status", "counter", "stored", "ledger",
        title="usage_daily vs llm_requests",
    )  # fmt: skip
    lines = [(m, d) for m in check.mismatches for d in m.differences]
    for mismatch, difference in lines[:SHOWN]:
        key = mismatch.key
        table.add_row(
            key.day.isoformat(),
            f"{mismatch.account_slug}/{key.agent_slug or '-'}",
            f"{key.provider}:{key.model}",
            f"{key.status} ({key.error_class})" if key.error_class else key.status,
            difference.counter,
            str(difference.stored),
            str(difference.ledger),
            style="bold red",
        )
    console.print(table)
    if len(lines) > SHOWN:
        console.print(f"… and {len(lines) - SHOWN} more differing counters")
    fail(
        f"{len(check.mismatches)} of {check.rows} rollup rows differ from the ledger; "
        "'switchboard ledger rollup rebuild' recomputes them"
    )


ACCOUNTS_HELP = "Only this account's rows (repeatable); every account by default."


@rollup_app.command("verify")
def rollup_verify(
    account: list[str] = typer.Option(None, "--account", help=ACCOUNTS_HELP),
) -> None:
    """Compare the stored rollup with the same aggregation computed from the ledger's final
    rows, in one snapshot; exit code 1 and a table of the differing counters if they differ."""

    async def op(c: Container) -> RollupCheck:
        return await c.ledger.check_rollup(account_ids=await _account_ids(c, account))

    _report(run_with_container(op))


@rollup_app.command("rebuild")
def rollup_rebuild(
    account: list[str] = typer.Option(None, "--account", help=ACCOUNTS_HELP),
) -> None:
    """Recompute the rollup from the ledger's final rows in one transaction (delete, then
    insert the aggregation; on PostgreSQL settlements wait for it), print the rows written,
    then verify it (exit code 1 if it still differs)."""

    async def op(c: Container) -> tuple[int, RollupCheck]:
        ids = await _account_ids(c, account)
        written = await c.ledger.rebuild_rollup(account_ids=ids)
        return written, await c.ledger.check_rollup(account_ids=ids)

    written, check = run_with_container(op)
    console.print(f"rebuilt the rollup: {written} rows written")
    _report(check)
