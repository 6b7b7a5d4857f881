"""Capacity belongs to the endpoint the operator declared, and one tenant cannot starve another
(issue 9 §3) — real HTTP, the fake provider as its own process, concurrent tasks."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from switchboard.settings import Settings
from tests.conftest import ADMIN, unique
from tests.live import FakeProviderProcess, fake_agent_body, live_app


async def _account_with_bot(
    http: httpx.AsyncClient, fake: FakeProviderProcess, limits: dict[str, Any]
) -> str:
    slug = unique("cap")
    assert (
        await http.post("/v1/accounts", json={"slug": slug, "name": slug}, headers=ADMIN)
    ).status_code == 201
    body = fake_agent_body("bot", fake.url, limits=limits)
    created = await http.post(f"/v1/accounts/{slug}/agents", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    return slug


async def _chat(http: httpx.AsyncClient, slug: str, i: int) -> httpx.Response:
    return await http.post(
        f"/v1/accounts/{slug}/agents/bot/chat", headers=ADMIN, json={"message": f"m{i}"}
    )


async def test_two_declarations_of_one_name_never_share_or_swap_a_limiter(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    """Two accounts declare a provider 'fake' with limits 3 and 1. Each keeps its own limit:
    together the endpoint never sees more than 3 + 1 calls, and each account alone never more
    than its own (a shared, swapped semaphore let 27 through)."""
    await fake.reset(latency_s=0.15)
    async with (
        live_app(settings) as (base, app),
        httpx.AsyncClient(
            base_url=base, timeout=120, limits=httpx.Limits(max_connections=80)
        ) as http,
    ):
        wide = await _account_with_bot(http, fake, {"max_concurrency": 3})
        narrow = await _account_with_bot(http, fake, {"max_concurrency": 1})
        barrier = asyncio.Barrier(40)
        seen: dict[str, int] = {}
        limiter = app.state.container.limiter

        async def one(slug: str, i: int) -> int:
            await barrier.wait()
            response = await _chat(http, slug, i)
            seen["max"] = max(seen.get("max", 0), limiter.snapshot().get("fake", (0, 0))[0])
            return response.status_code

        statuses = await asyncio.gather(*(one(wide if i % 2 else narrow, i) for i in range(40)))
        stats = await fake.stats()
    assert statuses == [200] * 40
    assert stats["requests_total"] == 40
    # 3 + 1, reached while both run (a shared limiter would cap both at 1 or at 3)
    assert stats["in_flight_max"] == 4
    assert seen["max"] <= 4


async def test_one_tenant_flooding_a_shared_provider_cannot_take_every_slot(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    """Tenant A holds 50 concurrent slow chats on a provider of 5 slots, at most 4 of them
    its own; tenant B's one chat gets the fifth at once instead of queueing behind A's 46."""
    await fake.reset(latency_s=0.3)
    limits = {"max_concurrency": 5, "per_account_max_concurrency": 4, "queue_timeout_s": 120}
    async with (
        live_app(settings) as (base, app),
        httpx.AsyncClient(
            base_url=base, timeout=120, limits=httpx.Limits(max_connections=80)
        ) as http,
    ):
        flooder = await _account_with_bot(http, fake, limits)
        other = await _account_with_bot(http, fake, limits)  # the same declaration: one limiter
        limiter = app.state.container.limiter
        done: list[str] = []

        async def flood(i: int) -> int:
            response = await _chat(http, flooder, i)
            done.append("a")
            return response.status_code

        flood_tasks = [asyncio.create_task(flood(i)) for i in range(50)]
        deadline = time.monotonic() + 30
        while sum(limiter._queued.values()) < 45:  # A's backlog of at least 45 is waiting
            assert time.monotonic() < deadline, limiter._queued
            await asyncio.sleep(0.01)
        finished_before = len(done)
        response = await _chat(http, other, 0)
        finished_by_then = len(done)
        statuses = await asyncio.gather(*flood_tasks)
        stats = await fake.stats()
    assert response.status_code == 200, response.text
    assert statuses == [200] * 50
    # B waited for at most one round of A's calls, not for A's queue of 46 (≈ 12 rounds)
    assert finished_by_then - finished_before <= 8, (finished_before, finished_by_then)
    assert stats["in_flight_max"] <= 5
