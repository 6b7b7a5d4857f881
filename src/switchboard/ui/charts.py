"""The overview's numbers, shaped from rows of the per-day usage rollup (never the ledger): one
point per day of the range (empty days are zeros), series stacked by agent or model, the top
accounts and agents, errors by class and latency percentiles from the rollup's histogram."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from switchboard.ledger.rollup import LATENCY_BUCKETS_MS, RollupRow, latency_bucket
from switchboard.money import nano_to_usd_str

Stack = Literal["agent", "model"]
TOP_SERIES = 8
OTHER = "(other)"


@dataclass(slots=True)
class Totals:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_nano_usd: int = 0

    def add(self, row: RollupRow) -> None:
        self.requests += row.requests
        self.input_tokens += row.input_tokens
        self.output_tokens += row.output_tokens
        self.cost_nano_usd += row.cost_nano_usd


@dataclass(frozen=True, slots=True)
class Ranked:
    label: str
    totals: Totals


@dataclass(frozen=True, slots=True)
class ErrorLine:
    status: str
    error_class: str
    requests: int
    share: float  # of all settled calls in the range


@dataclass(slots=True)
class Overview:
    stack: Stack
    chart: dict[str, Any]
    totals: Totals
    top_accounts: list[Ranked]
    top_agents: list[Ranked]
    errors: list[ErrorLine]
    error_rate: float
    latency: dict[str, str]


def day_range(since: date, until: date) -> list[date]:
    return [since + timedelta(days=n) for n in range((until - since).days)]


def _usd(nano: int) -> float:
    return float(nano_to_usd_str(nano))  # charts only; tables show the exact string


def _rank(groups: dict[str, Totals], limit: int) -> list[Ranked]:
    ordered = sorted(groups.items(), key=lambda kv: (-kv[1].cost_nano_usd, -kv[1].requests, kv[0]))
    return [Ranked(label, totals) for label, totals in ordered[:limit]]


def build_overview(
    rows: Iterable[RollupRow],
    *,
    since: date,
    until: date,
    stack: Stack,
    cross_account: bool,
    top: int = 10,
) -> Overview:
    days = day_range(since, until)
    index = {d: i for i, d in enumerate(days)}
    rows = [r for r in rows if r.day in index]
    totals = Totals()
    by_account: dict[str, Totals] = defaultdict(Totals)
    by_agent: dict[str, Totals] = defaultdict(Totals)
    by_series: dict[str, Totals] = defaultdict(Totals)
    by_error: dict[tuple[str, str], int] = defaultdict(int)
    buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)

    def series_label(row: RollupRow) -> str:
        if stack == "model":
            return row.model
        agent = row.agent_slug or "(no agent)"
        return f"{row.account_slug}/{agent}" if cross_account else agent

    for row in rows:
        totals.add(row)
        by_account[row.account_slug].add(row)
        by_agent[f"{row.account_slug}/{row.agent_slug}" if cross_account else row.agent_slug].add(
            row
        )
        by_series[series_label(row)].add(row)
        if row.status != "complete":
            by_error[(row.status, row.error_class or "-")] += row.requests
        for i, count in enumerate(row.latency_buckets):
            buckets[i] += count

    kept = [r.label for r in _rank(by_series, TOP_SERIES)]
    has_other = len(by_series) > len(kept)
    labels = kept + ([OTHER] if has_other else [])
    position = {label: i for i, label in enumerate(labels)}
    cost = [[0] * len(days) for _ in labels]
    calls = [[0] * len(days) for _ in labels]
    tokens = [[0] * len(days) for _ in labels]
    for row in rows:
        s = position.get(series_label(row), position.get(OTHER, 0))
        d = index[row.day]
        cost[s][d] += row.cost_nano_usd
        calls[s][d] += row.requests
        tokens[s][d] += row.input_tokens + row.output_tokens
    chart = {
        "days": [int(datetime.combine(d, time(), tzinfo=UTC).timestamp()) for d in days],
        "series": [
            {
                "label": label,
                "cost": [_usd(v) for v in cost[i]],
                "calls": calls[i],
                "tokens": tokens[i],
            }
            for i, label in enumerate(labels)
        ],
    }
    errors = sum(by_error.values())
    latency = {
        name: _latency(buckets, q) for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    }
    return Overview(
        stack=stack,
        chart=chart,
        totals=totals,
        top_accounts=_rank(by_account, top),
        top_agents=_rank(by_agent, top),
        errors=[
            ErrorLine(status, kind, count, count / totals.requests if totals.requests else 0.0)
            for (status, kind), count in sorted(by_error.items(), key=lambda kv: -kv[1])
        ],
        error_rate=errors / totals.requests if totals.requests else 0.0,
        latency=latency,
    )


def _latency(buckets: Sequence[int], q: float) -> str:
    """A percentile as the bound of its bucket: "≤ 250 ms", or "> 60,000 ms" in the overflow."""
    index = latency_bucket(buckets, q)
    if index is None:
        return "-"
    if index >= len(LATENCY_BUCKETS_MS):
        return f"> {LATENCY_BUCKETS_MS[-1]:,} ms"
    return f"≤ {LATENCY_BUCKETS_MS[index]:,} ms"


def parse_days(value: int, *, today: date) -> tuple[date, date]:
    """The last ``value`` days, today included: [since, until)."""
    until = today + timedelta(days=1)
    return until - timedelta(days=value), until
