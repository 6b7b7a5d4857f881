from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from enum import StrEnum

import typer
from rich.table import Table

from switchboard.bootstrap import Container
from switchboard.cli.common import account_scope, console, fail, run_with_container
from switchboard.ledger.schemas import LedgerFilters, UsageOut, UsageReport


class GroupBy(StrEnum):
    agent = "agent"
    model = "model"
    day = "day"


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--{name}: expected an ISO date or datetime with timezone, e.g. 2026-11-01T00:00Z")
    if parsed.tzinfo is None:
        fail(f"--{name}: add a timezone, e.g. {value}T00:00:00+00:00 or Z")
    return parsed


def usage(
    account: str = typer.Argument(..., help="Account slug."),
    since: str = typer.Option(None, help="From this time (ISO 8601 with timezone), inclusive."),
    until: str = typer.Option(None, help="Until this time (ISO 8601 with timezone), exclusive."),
    group_by: GroupBy = typer.Option(None, "--group-by", help="Group by agent, model or day."),
    output: Format = typer.Option(Format.table, "--format", help="table, csv or json."),
) -> None:
    """LLM usage and exact cost of an account, from the ledger."""
    filters = LedgerFilters(since=_when(since, "since"), until=_when(until, "until"))

    async def op(c: Container) -> UsageReport:
        groups, total = await c.ledger.usage(
            await account_scope(c, account), filters, group_by.value if group_by else None
        )
        return UsageReport(
            group_by=group_by.value if group_by else None,
            groups=[UsageOut.of(g) for g in groups],
            total=UsageOut.of(total),
        )

    report = run_with_container(op)
    rows = [*report.groups, report.total.model_copy(update={"group": "TOTAL"})]
    columns = [
        "group",
        "requests",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "estimated_requests",
        "estimated_cost_usd",
        "unpriced_requests",
    ]
    if output is Format.json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
    elif output is Format.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                [getattr(row, c) if getattr(row, c) is not None else "" for c in columns]
            )
        print(buffer.getvalue(), end="")
    else:
        table = Table(*columns, title=f"usage of {account}")
        for row in rows:
            table.add_row(
                *[str(getattr(row, c) if getattr(row, c) is not None else "-") for c in columns]
            )
        console.print(table)
