"""Billing rules that hold without a server: token estimates, provider error messages that
never carry the provider's body, reconciliation, and the budget gate's waiting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from pydantic_ai import exceptions as pai

from switchboard.errors import BudgetBusy, ProviderStreamCut
from switchboard.ledger.estimate import estimate_tokens, worst_case_input
from switchboard.ledger.reconcile import reconcile
from switchboard.ledger.schemas import TotalsRow
from switchboard.runtime.provider_errors import classify_provider_error
from switchboard.traffic.budgets import BudgetGate, ReservationsInFlight

SECRET_BODY = {"error": {"message": "org-4242 over quota for key sk-live-XYZ", "type": "x"}}


def test_estimates_count_text_not_zero() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("hello world, how are you") == 6  # 24 ASCII bytes / 4
    assert estimate_tokens("日本語") == 3  # one token per non-Latin character
    assert worst_case_input(100) > 100


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, "PROVIDER_RATE_LIMITED"),
        (500, "PROVIDER_UNAVAILABLE"),
        (503, "PROVIDER_UNAVAILABLE"),
        (400, "PROVIDER_PERMANENT_ERROR"),
        (404, "PROVIDER_PERMANENT_ERROR"),
    ],
)
def test_provider_bodies_never_reach_the_tenant(status: int, code: str) -> None:
    error = classify_provider_error(
        pai.ModelHTTPError(status_code=status, model_name="m", body=SECRET_BODY), "m"
    )
    assert error.code == code
    assert f"HTTP {status}" in error.message
    assert "sk-live" not in error.message
    assert "org-4242" not in error.message


def test_a_stream_cut_is_transient() -> None:
    assert ProviderStreamCut("x").retryable
    assert BudgetBusy("x").retryable


def _row(status: str, source: str, n: int, tokens_in: int, tokens_out: int) -> TotalsRow:
    return TotalsRow(status, source, n, tokens_in, tokens_out, cost_nano_usd=n * 10)


def test_reconcile_reports_differences_and_estimates_apart() -> None:
    stats = {
        "requests_total": 5,
        "prompt_tokens": 300,
        "completion_tokens": 40,
        "by_status": {"200": 3, "cut": 1, "429": 1},
    }
    rows = [
        _row("complete", "reported", 3, 300, 40),
        _row("error", "partial", 1, 100, 3),
        _row("error", "reported", 1, 0, 0),
    ]
    assert reconcile(rows, stats).ok
    lost = reconcile(rows[:2], stats)
    assert [line.what for line in lost.differences] == ["calls"]
    short = reconcile([_row("complete", "reported", 3, 300, 39), *rows[1:]], stats)
    assert [line.what for line in short.differences] == ["output tokens (answered)"]
    report = reconcile([*rows, _row("interrupted", "estimated", 1, 50, 0)], stats)
    assert report.estimated_cost_nano_usd == 10
    assert [line.what for line in report.differences] == ["calls"]


async def test_budget_waiters_are_woken_by_a_settlement_in_turn() -> None:
    gate = BudgetGate(poll_s=60)  # no polling: only settlements wake waiters
    account = uuid.uuid4()
    free = 0
    outcomes: list[str] = []
    changed = asyncio.Event()

    async def attempt() -> str:
        nonlocal free
        changed.set()
        if free == 0:
            outcomes.append("busy")
            raise ReservationsInFlight("the account")
        free -= 1
        outcomes.append("reserved")
        return "reserved"

    async def until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            while not condition():
                changed.clear()
                await changed.wait()

    waiters = [
        asyncio.create_task(gate.reserve((account, ""), attempt, timeout_s=10)) for _ in range(5)
    ]
    await until(lambda: len(outcomes) == 1)
    assert gate.waiting() == 5  # only the first tried: the others queued behind it
    free = 2
    gate.settled(account)  # room for two: the first two go, the third tries and waits again
    await until(lambda: len(outcomes) == 4)
    assert outcomes[1:] == ["reserved", "reserved", "busy"]  # not one attempt per waiter
    free = 3
    gate.settled(account)
    async with asyncio.timeout(5):
        assert await asyncio.gather(*waiters) == ["reserved"] * 5
    assert outcomes.count("busy") == 2
    assert gate.waiting() == 0


async def test_budget_busy_after_the_queue_timeout() -> None:
    gate = BudgetGate(poll_s=0.05)

    async def attempt() -> None:
        raise ReservationsInFlight("the account")

    with pytest.raises(BudgetBusy) as raised:
        await gate.reserve((uuid.uuid4(), ""), attempt, timeout_s=0.3)
    assert raised.value.retry_after_s


def test_an_unreachable_provider_names_no_address() -> None:
    error = classify_provider_error(
        pai.ModelConnectionError(model_name="m", message="connect to 10.1.2.3:443 failed"), "m"
    )
    assert error.code == "PROVIDER_UNAVAILABLE"
    assert "10.1.2.3" not in error.message
