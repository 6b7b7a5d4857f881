"""A caller cancelled while its write-ahead row commits (a client gone mid-admission) leaves no
pending row and no budget hold behind: the row that committed anyway is settled cancelled."""

from __future__ import annotations

import asyncio
import uuid

from switchboard.bootstrap import Container
from switchboard.db.uow import AccountScope
from switchboard.ledger.service import CallContext


async def test_a_cancelled_open_never_leaves_a_row_or_a_hold_behind(
    container: Container, account: AccountScope
) -> None:
    await container.budgets.put(account, agent=None, period="day", limit_nano_usd=10**9)
    ctx = CallContext(scope=account, run_id=uuid.uuid4(), provider="fake", model="fake-model")
    committed_then_cancelled = 0
    for yields in range(5):
        before = {r.id for r in await _rows(container, account)}
        task = asyncio.create_task(container.ledger.open(ctx, budget_hold_nano_usd=1000))
        for _ in range(10_000):  # until the row's unit of work is under way …
            if container.ledger._finishing:
                break
            await asyncio.sleep(0)
        for _ in range(yields):
            await asyncio.sleep(0)
        task.cancel()  # … then the caller goes away
        done = await asyncio.gather(task, return_exceptions=True)
        await container.ledger.drain()  # the shielded commit and any orphan settlement
        new = [r for r in await _rows(container, account) if r.id not in before]
        if isinstance(done[0], asyncio.CancelledError) and new:
            committed_then_cancelled += 1
            assert [r.status for r in new] == ["cancelled"]
        elif not isinstance(done[0], BaseException):  # open finished before the cancel
            row_id, reservation = done[0]
            await container.ledger.finish(
                ctx, row_id, status="cancelled", usage=_nothing(), latency_ms=0,
                reservation=reservation,
            )  # fmt: skip
        status = await container.budgets.status(account, agent=None)
        assert status.reserved_nano_usd == 0, yields
    assert all(r.status != "pending" for r in await _rows(container, account))
    assert committed_then_cancelled >= 1  # the path under test was taken


async def _rows(container: Container, account: AccountScope) -> list[object]:
    from switchboard.ledger.schemas import LedgerFilters

    rows, _ = await container.ledger.page(account, LedgerFilters(), cursor=None, limit=200)
    return rows  # type: ignore[return-value]


def _nothing() -> object:
    from switchboard.ledger.service import TokenUsage

    return TokenUsage()
