"""The door of runs: a bounded number execute, a bounded queue waits in order, and anything
beyond is refused at once with SERVER_BUSY (retryable, with a delay)."""

from __future__ import annotations

import asyncio

import pytest

from switchboard.errors import ServerBusy
from switchboard.runtime.gate import RunGate


async def test_places_then_a_bounded_queue_then_refusal() -> None:
    gate = RunGate(active=2, queued=2, wait_s=5)
    await gate.enter()
    await gate.enter()
    order: list[int] = []

    async def queued(i: int) -> None:
        await gate.enter()
        order.append(i)

    waiting = [asyncio.create_task(queued(i)) for i in range(2)]
    for _ in range(3):  # each waiter reaches the queue in its first step
        await asyncio.sleep(0)
    assert gate.waiting == 2
    with pytest.raises(ServerBusy) as refused:
        await gate.enter()
    assert refused.value.code == "SERVER_BUSY"
    assert refused.value.retryable
    assert refused.value.retry_after_s
    gate.leave()
    gate.leave()
    await asyncio.gather(*waiting)
    assert order == [0, 1]  # first come, first served
    assert gate.waiting == 0


async def test_a_wait_that_runs_out_is_refused_and_leaves_the_queue() -> None:
    gate = RunGate(active=1, queued=5, wait_s=0.05)
    await gate.enter()
    with pytest.raises(ServerBusy):
        await gate.enter()
    assert gate.waiting == 0
    gate.leave()
    await gate.enter()  # the place is free again
