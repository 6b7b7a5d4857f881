"""The per-day usage rollup of the ledger (table ``usage_daily``): its key, its counters, the
latency histogram, and the shapes the service hands out. Pure: no database here (the queries are
in :mod:`switchboard.ledger.repository`), so the console may import it.

One rollup row per (account, UTC day of the ledger row's ``created_at``, agent, provider, model,
status, error class) sums the *final* ledger rows with that key (``pending`` rows are not rolled
up). It is kept in the unit of work that changes a ledger row's status or usage — a settlement,
a late settlement of a swept row, the sweep — so the rollup equals the ledger at every commit;
``LedgerService.verify_rollup`` proves it and ``rebuild_rollup`` recomputes it.

Latency is a fixed histogram: bucket ``i`` counts calls with ``LATENCY_BUCKETS_MS[i-1] <
latency_ms <= LATENCY_BUCKETS_MS[i]`` (the first from 0), the last one (overflow) calls over
``LATENCY_BUCKETS_MS[-1]``. Rows without a latency (interrupted calls) count in no bucket and
not in ``latency_count``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

__all__ = [
    "COUNTERS",
    "KEY_COLUMNS",
    "LATENCY_BUCKETS_MS",
    "LATENCY_COLUMNS",
    "Difference",
    "RollupCheck",
    "RollupKey",
    "RollupMismatch",
    "RollupRow",
    "compare",
    "contribution",
    "latency_bucket",
    "latency_column",
    "latency_percentile",
    "merge",
    "utc_day",
]

LATENCY_BUCKETS_MS: tuple[int, ...] = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
# One column per bucket, then the overflow: latency_le_50 … latency_le_60000, latency_gt_60000.
LATENCY_COLUMNS: tuple[str, ...] = (
    *(f"latency_le_{bound}" for bound in LATENCY_BUCKETS_MS),
    f"latency_gt_{LATENCY_BUCKETS_MS[-1]}",
)
KEY_COLUMNS: tuple[str, ...] = (
    "account_id",
    "day",
    "agent_slug",
    "provider",
    "model",
    "status",
    "error_class",
)
# Every counter of a rollup row, in column order (the latency histogram last).
COUNTERS: tuple[str, ...] = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_nano_usd",
    "unpriced_requests",
    "estimated_requests",
    "estimated_input_tokens",
    "estimated_output_tokens",
    "estimated_cost_nano_usd",
    "latency_count",
    "latency_sum_ms",
    *LATENCY_COLUMNS,
)


def utc_day(created_at: datetime) -> date:
    """The rollup day of a ledger row: the UTC date of its ``created_at``."""
    if created_at.tzinfo is None:
        raise ValueError("naive datetime given; ledger times are timezone-aware UTC")
    return created_at.astimezone(UTC).date()


def latency_column(latency_ms: int) -> str:
    """The histogram column a latency counts in."""
    for bound, column in zip(LATENCY_BUCKETS_MS, LATENCY_COLUMNS, strict=False):
        if latency_ms <= bound:
            return column
    return LATENCY_COLUMNS[-1]


def latency_bucket(buckets: Sequence[int], q: float) -> int | None:
    """The index of the bucket where the ``q`` quantile (0 ≤ q ≤ 1) of a latency histogram falls:
    where the cumulative count reaches rank ``ceil(q × total)`` (at least the first call).
    ``len(LATENCY_BUCKETS_MS)`` is the overflow bucket; ``None`` when the histogram is empty."""
    if len(buckets) != len(LATENCY_COLUMNS):
        raise ValueError(f"expected {len(LATENCY_COLUMNS)} buckets, got {len(buckets)}")
    if not 0 <= q <= 1:
        raise ValueError(f"q must be between 0 and 1, got {q}")
    total = sum(buckets)
    if total <= 0:
        return None
    rank = max(1, math.ceil(Decimal(str(q)) * total))  # exact: 0.07 × 100 is 7, not 7.000…1
    seen = 0
    for index, count in enumerate(buckets):
        seen += count
        if seen >= rank:
            return index
    return len(buckets) - 1  # pragma: no cover - seen reaches total ≥ rank


def latency_percentile(buckets: Sequence[int], q: float) -> int | None:
    """The ``q`` quantile of a latency histogram as the upper bound in ms of its bucket
    (:func:`latency_bucket`); ``None`` when the histogram is empty. A quantile in the overflow
    bucket returns the last bound, ``LATENCY_BUCKETS_MS[-1]`` (60000), to be read as "> 60000":
    :func:`latency_bucket` tells the two apart."""
    index = latency_bucket(buckets, q)
    return None if index is None else LATENCY_BUCKETS_MS[min(index, len(LATENCY_BUCKETS_MS) - 1)]


@dataclass(frozen=True, slots=True, order=True)
class RollupKey:
    """The key of a rollup row, in the primary key's column order (also the order keys are
    written in within a transaction: one lock order for every writer)."""

    account_id: uuid.UUID
    day: date
    agent_slug: str
    provider: str
    model: str
    status: str
    error_class: str

    @classmethod
    def of(
        cls,
        *,
        account_id: uuid.UUID,
        created_at: datetime,
        agent_slug: str | None,
        provider: str,
        model: str,
        status: str,
        error_class: str | None,
    ) -> RollupKey:
        return cls(
            account_id=account_id,
            day=utc_day(created_at),
            agent_slug=agent_slug or "",
            provider=provider,
            model=model,
            status=status,
            error_class=error_class or "",
        )

    def values(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in KEY_COLUMNS}


def contribution(
    *,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int,
    cost_nano_usd: int,
    priced: bool,
    usage_source: str,
    latency_ms: int | None,
    sign: int = 1,
) -> dict[str, int]:
    """What one final ledger row adds to its rollup row (``sign=-1``: what it takes away)."""
    estimated = usage_source == "estimated"
    counts = {
        "requests": 1,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_tokens": cached_tokens,
        "cost_nano_usd": cost_nano_usd,
        "unpriced_requests": 0 if priced else 1,
        "estimated_requests": 1 if estimated else 0,
        "estimated_input_tokens": input_tokens if estimated else 0,
        "estimated_output_tokens": output_tokens if estimated else 0,
        "estimated_cost_nano_usd": cost_nano_usd if estimated else 0,
        "latency_count": 0 if latency_ms is None else 1,
        "latency_sum_ms": latency_ms or 0,
    }
    counts.update(dict.fromkeys(LATENCY_COLUMNS, 0))
    if latency_ms is not None:
        counts[latency_column(latency_ms)] = 1
    return {name: sign * value for name, value in counts.items()}


def merge(
    deltas: Iterable[tuple[RollupKey, Mapping[str, int]]],
) -> dict[RollupKey, dict[str, int]]:
    """Sum contributions per key."""
    merged: dict[RollupKey, dict[str, int]] = {}
    for key, delta in deltas:
        into = merged.setdefault(key, dict.fromkeys(COUNTERS, 0))
        for name, value in delta.items():
            into[name] += value
    return merged


@dataclass(frozen=True, slots=True)
class RollupRow:
    """One stored row of ``usage_daily``: a key and its counters. Money in nano-USD.
    ``latency_buckets`` has one count per ``LATENCY_BUCKETS_MS`` bound and the overflow last
    (feed it to :func:`latency_percentile`)."""

    day: date
    account_id: uuid.UUID
    account_slug: str
    agent_slug: str  # '' when the calls had no agent
    provider: str
    model: str
    status: str  # complete | error | cancelled | interrupted (never pending)
    error_class: str  # transient | permanent | fatal, '' when none
    requests: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_nano_usd: int
    unpriced_requests: int
    estimated_requests: int
    estimated_input_tokens: int
    estimated_output_tokens: int
    estimated_cost_nano_usd: int
    latency_count: int
    latency_sum_ms: int
    latency_buckets: tuple[int, ...]

    @property
    def key(self) -> RollupKey:
        return RollupKey(
            self.account_id,
            self.day,
            self.agent_slug,
            self.provider,
            self.model,
            self.status,
            self.error_class,
        )

    def counters(self) -> dict[str, int]:
        found = {name: getattr(self, name) for name in COUNTERS if name not in LATENCY_COLUMNS}
        return found | dict(zip(LATENCY_COLUMNS, self.latency_buckets, strict=True))


@dataclass(frozen=True, slots=True)
class Difference:
    counter: str
    stored: int  # in usage_daily
    ledger: int  # computed from llm_requests


@dataclass(frozen=True, slots=True)
class RollupMismatch:
    """A key whose stored rollup row differs from the ledger's aggregation (a missing row
    counts as zeros)."""

    key: RollupKey
    account_slug: str
    differences: tuple[Difference, ...]


@dataclass(frozen=True, slots=True)
class RollupCheck:
    """The outcome of one comparison: the keys compared and those that differ."""

    rows: int
    mismatches: list[RollupMismatch]


def compare(stored: Sequence[RollupRow], ledger: Sequence[RollupRow]) -> RollupCheck:
    """Compare two sets of rows key by key (every counter; the denormalised slug is a label)."""
    by_key = {row.key: row for row in stored}
    truth = {row.key: row for row in ledger}
    zeros = dict.fromkeys(COUNTERS, 0)
    mismatches: list[RollupMismatch] = []
    for key in sorted(by_key.keys() | truth.keys()):
        mine, theirs = by_key.get(key), truth.get(key)
        left = mine.counters() if mine is not None else zeros
        right = theirs.counters() if theirs is not None else zeros
        differences = tuple(
            Difference(name, left[name], right[name])
            for name in COUNTERS
            if left[name] != right[name]
        )
        if differences:
            slug = (mine or theirs).account_slug  # type: ignore[union-attr]
            mismatches.append(RollupMismatch(key, slug, differences))
    return RollupCheck(rows=len(by_key.keys() | truth.keys()), mismatches=mismatches)
