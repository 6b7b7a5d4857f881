"""The rollup's pure parts: the latency histogram and its percentiles, a row's contribution,
the comparison verify makes, and the table's columns against the counters."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import inspect

from switchboard.ledger.models import UsageDaily
from switchboard.ledger.rollup import (
    COUNTERS,
    KEY_COLUMNS,
    LATENCY_BUCKETS_MS,
    LATENCY_COLUMNS,
    RollupKey,
    RollupRow,
    compare,
    contribution,
    latency_bucket,
    latency_column,
    latency_percentile,
    utc_day,
)

EMPTY = (0,) * (len(LATENCY_BUCKETS_MS) + 1)


def _hist(**counts: int) -> tuple[int, ...]:
    """A histogram from ``le_50=3, gt_60000=1``-style counts."""
    by_column = {column.removeprefix("latency_"): 0 for column in LATENCY_COLUMNS}
    by_column.update(counts)
    return tuple(by_column.values())


def test_the_table_has_one_column_per_counter_and_bucket() -> None:
    columns = [column.key for column in inspect(UsageDaily).columns]
    assert columns == [*KEY_COLUMNS, "account_slug", *COUNTERS]
    assert [c.name for c in inspect(UsageDaily).primary_key] == list(KEY_COLUMNS)
    assert len(LATENCY_COLUMNS) == len(LATENCY_BUCKETS_MS) + 1
    assert LATENCY_BUCKETS_MS == (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


@pytest.mark.parametrize(
    ("latency_ms", "column"),
    [
        (0, "latency_le_50"),
        (50, "latency_le_50"),
        (51, "latency_le_100"),
        (100, "latency_le_100"),
        (2501, "latency_le_5000"),
        (60000, "latency_le_60000"),
        (60001, "latency_gt_60000"),
        (10**9, "latency_gt_60000"),
    ],
)
def test_a_latency_counts_in_the_bucket_up_to_its_bound(latency_ms: int, column: str) -> None:
    assert latency_column(latency_ms) == column


def test_percentiles_of_a_histogram() -> None:
    assert latency_percentile(EMPTY, 0.5) is None
    assert latency_percentile(_hist(le_50=10), 0.99) == 50
    hundred = _hist(le_50=50, le_100=40, le_1000=9, gt_60000=1)
    assert latency_percentile(hundred, 0.0) == 50  # the first call
    assert latency_percentile(hundred, 0.5) == 50
    assert latency_percentile(hundred, 0.51) == 100
    assert latency_percentile(hundred, 0.90) == 100
    assert latency_percentile(hundred, 0.91) == 1000
    assert latency_percentile(hundred, 0.99) == 1000
    assert latency_percentile(hundred, 1.0) == 60000  # the overflow: read as "> 60000"
    # 0.07 × 100 is 7.000000000000001 in floats: the 7th call, not the 8th.
    assert latency_percentile(_hist(le_50=7, le_100=93), 0.07) == 50


def test_percentile_refuses_a_wrong_histogram_or_quantile() -> None:
    with pytest.raises(ValueError, match="buckets"):
        latency_percentile((1, 2, 3), 0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        latency_percentile(_hist(le_50=1), 1.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        latency_percentile(_hist(le_50=1), -0.1)


@given(
    st.lists(st.integers(min_value=0, max_value=50), min_size=11, max_size=11),
    st.floats(min_value=0, max_value=1),
)
def test_the_percentile_is_the_nearest_rank_of_the_calls(counts: list[int], q: float) -> None:
    """Spread into one bound per call (the overflow at the last bound), the histogram's
    percentile is the nearest-rank percentile of the calls."""
    bounds = [*LATENCY_BUCKETS_MS, LATENCY_BUCKETS_MS[-1]]
    calls = sorted(bound for bound, count in zip(bounds, counts, strict=True) for _ in range(count))
    found = latency_percentile(counts, q)
    if not calls:
        assert found is None
        return
    rank = max(1, math.ceil(Decimal(str(q)) * len(calls)))  # q as written, exactly
    assert found == calls[rank - 1]


def test_a_rows_contribution() -> None:
    measured = contribution(
        input_tokens=100,
        output_tokens=20,
        cached_tokens=5,
        cost_nano_usd=1234,
        priced=True,
        usage_source="reported",
        latency_ms=120,
    )
    assert set(measured) == set(COUNTERS)
    assert {k: v for k, v in measured.items() if v} == {
        "requests": 1,
        "input_tokens": 100,
        "output_tokens": 20,
        "cached_tokens": 5,
        "cost_nano_usd": 1234,
        "latency_count": 1,
        "latency_sum_ms": 120,
        "latency_le_250": 1,
    }
    estimated = contribution(
        input_tokens=40,
        output_tokens=0,
        cached_tokens=0,
        cost_nano_usd=6,
        priced=False,
        usage_source="estimated",
        latency_ms=None,
        sign=-1,
    )
    assert {k: v for k, v in estimated.items() if v} == {
        "requests": -1,
        "input_tokens": -40,
        "cost_nano_usd": -6,
        "unpriced_requests": -1,
        "estimated_requests": -1,
        "estimated_input_tokens": -40,
        "estimated_cost_nano_usd": -6,
    }  # no latency: in no bucket, not in latency_count


def test_the_rollup_day_is_the_utc_date() -> None:
    late = datetime(2026, 11, 24, 23, 59, 59, 900_000, tzinfo=UTC)
    assert utc_day(late) == date(2026, 11, 24)
    assert utc_day(late + timedelta(milliseconds=100)) == date(2026, 11, 25)
    assert utc_day(late.astimezone(timezone(timedelta(hours=14)))) == date(2026, 11, 24)
    with pytest.raises(ValueError, match="naive"):
        utc_day(datetime(2026, 11, 24, 12))


def _row(key: RollupKey, **counters: int) -> RollupRow:
    values = dict.fromkeys(COUNTERS, 0) | counters
    buckets = tuple(values.pop(column) for column in LATENCY_COLUMNS)
    return RollupRow(**key.values(), account_slug="a", **values, latency_buckets=buckets)  # type: ignore[arg-type]


def test_compare_names_each_differing_counter_and_missing_rows() -> None:
    account = uuid.uuid4()
    same, changed, missing, extra = (
        RollupKey(account, date(2026, 11, 24), "bot", "fake", "m", status, "")
        for status in ("complete", "error", "cancelled", "interrupted")
    )
    stored = [
        _row(same, requests=2),
        _row(changed, requests=3, latency_le_50=1),
        _row(extra, requests=1),
    ]
    ledger = [_row(same, requests=2), _row(changed, requests=2), _row(missing, requests=4)]
    check = compare(stored, ledger)
    assert check.rows == 4
    found = {
        m.key.status: [(d.counter, d.stored, d.ledger) for d in m.differences]
        for m in check.mismatches
    }
    assert found == {
        "error": [("requests", 3, 2), ("latency_le_50", 1, 0)],
        "cancelled": [("requests", 0, 4)],
        "interrupted": [("requests", 1, 0)],
    }
    assert compare(ledger, ledger).mismatches == []


def test_a_percentile_in_the_overflow_bucket_is_told_apart() -> None:
    """The console labels a percentile by its bucket: "> 60,000 ms" when it falls past the last
    bound, never "≤ 60,000 ms" (which the bound alone cannot tell apart)."""
    from switchboard.ui.charts import _latency

    slow = _hist(le_50=1, gt_60000=99)
    assert latency_bucket(slow, 0.01) == 0
    assert latency_bucket(slow, 0.5) == len(LATENCY_BUCKETS_MS)
    assert latency_percentile(slow, 0.5) == 60000
    assert _latency(slow, 0.5) == "> 60,000 ms"
    assert _latency(_hist(le_60000=1), 0.5) == "≤ 60,000 ms"
    assert _latency(_hist(le_50=3), 0.99) == "≤ 50 ms"
    assert _latency(EMPTY, 0.5) == "-"
