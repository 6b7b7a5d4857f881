"""Rule 7: slots are released on every path, waiters are served in FIFO order, and waiting past
the queue timeout is PROVIDER_BUSY — never a leak, never an unbounded wait."""

from __future__ import annotations

import asyncio

import pytest

from switchboard.errors import ProviderBusy
from switchboard.traffic.limiter import InProcessLimiter
from switchboard.traffic.limits import Admission, LimitSpec


def admission(
    limit: int = 2, timeout: float = 5, *, rpm: int | None = None, tpm: int | None = None
) -> Admission:
    return Admission(specs=(LimitSpec("p", limit, rpm, tpm),), queue_timeout_s=timeout)


async def test_released_after_success_error_and_cancellation() -> None:
    limiter = InProcessLimiter()
    async with limiter.admit(admission(), tokens=1):
        assert limiter.in_use("p") == 1
    assert limiter.in_use("p") == 0

    with pytest.raises(RuntimeError):
        async with limiter.admit(admission(), tokens=1):
            raise RuntimeError("provider failed")
    assert limiter.in_use("p") == 0

    inside = asyncio.Event()

    async def held_forever() -> None:
        async with limiter.admit(admission(), tokens=1):
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(held_forever())
    await inside.wait()
    assert limiter.in_use("p") == 1
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert limiter.in_use("p") == 0


async def test_waiting_past_the_queue_timeout_is_provider_busy_and_leaks_nothing() -> None:
    limiter = InProcessLimiter()
    release = asyncio.Event()
    holding = asyncio.Event()

    async def hold() -> None:
        async with limiter.admit(admission(limit=1), tokens=1):
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    with pytest.raises(ProviderBusy) as caught:
        async with limiter.admit(admission(limit=1, timeout=0.05), tokens=1):
            pass
    assert caught.value.retry_after_s is not None
    assert limiter.queued("p") == 0
    release.set()
    await holder
    assert limiter.in_use("p") == 0
    async with limiter.admit(admission(limit=1), tokens=1):  # the slot is free again
        pass


async def test_cancelled_waiter_does_not_take_a_slot() -> None:
    limiter = InProcessLimiter()
    release, holding = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with limiter.admit(admission(limit=1), tokens=1):
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    waiter = asyncio.create_task(_enter(limiter, admission(limit=1)))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    release.set()
    await holder
    assert limiter.in_use("p") == 0
    assert limiter.queued("p") == 0


async def _enter(limiter: InProcessLimiter, adm: Admission) -> None:
    async with limiter.admit(adm, tokens=1):
        pass


async def test_waiters_are_served_first_come_first_served() -> None:
    limiter = InProcessLimiter()
    order: list[int] = []
    release, holding = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with limiter.admit(admission(limit=1), tokens=1):
            holding.set()
            await release.wait()

    async def wait_turn(i: int, queued: asyncio.Event) -> None:
        queued.set()
        async with limiter.admit(admission(limit=1), tokens=1):
            order.append(i)

    holder = asyncio.create_task(hold())
    await holding.wait()
    waiters = []
    for i in range(10):
        queued = asyncio.Event()
        waiters.append(asyncio.create_task(wait_turn(i, queued)))
        await queued.wait()
        await asyncio.sleep(0)  # let it reach the semaphore
    release.set()
    await asyncio.gather(holder, *waiters)
    assert order == list(range(10))


async def test_concurrency_never_exceeds_the_limit() -> None:
    limiter = InProcessLimiter()
    peak = current = 0

    async def call() -> None:
        nonlocal peak, current
        async with limiter.admit(admission(limit=3), tokens=1):
            current += 1
            peak = max(peak, current)
            await asyncio.sleep(0)
            current -= 1

    await asyncio.gather(*(call() for _ in range(100)))
    assert peak == 3


async def test_rpm_limit_makes_callers_wait_or_fail_busy() -> None:
    limiter = InProcessLimiter()
    for _ in range(3):  # a full bucket admits its capacity at once
        async with limiter.admit(admission(limit=10, timeout=0.05, rpm=3), tokens=1):
            pass
    with pytest.raises(ProviderBusy):  # the next token takes 20 s to refill
        async with limiter.admit(admission(limit=10, timeout=0.05, rpm=3), tokens=1):
            pass


async def test_tpm_limit_counts_tokens() -> None:
    limiter = InProcessLimiter()
    async with limiter.admit(admission(limit=10, timeout=0.05, tpm=1000), tokens=900):
        pass
    with pytest.raises(ProviderBusy):
        async with limiter.admit(admission(limit=10, timeout=0.05, tpm=1000), tokens=200):
            pass
