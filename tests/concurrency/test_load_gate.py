"""Load without failures: 500 concurrent chats all succeed (the door queues what the database
cannot take yet), and when the queue itself is full a request is refused at the door — 503
SERVER_BUSY with Retry-After — before any provider call, so nothing refused is ever billed."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.concurrency.billing import agent_account, settled_rows
from tests.conftest import ADMIN, ADMIN_KEY
from tests.live import FakeProviderProcess, ServerProcess


async def _burst(base: str, slug: str, n: int) -> list[httpx.Response]:
    barrier = asyncio.Barrier(n)
    limits = httpx.Limits(max_connections=n + 10)
    async with httpx.AsyncClient(base_url=base, timeout=150, limits=limits) as http:

        async def one(i: int) -> httpx.Response:
            await barrier.wait()
            return await http.post(
                f"/v1/accounts/{slug}/agents/bot/chat", headers=ADMIN, json={"message": f"m{i}"}
            )

        async with asyncio.timeout(180):
            return await asyncio.gather(*(one(i) for i in range(n)))


async def test_500_concurrent_chats_all_succeed(
    database_url: str, fake: FakeProviderProcess
) -> None:
    await fake.reset(latency_s=0.1)
    server = ServerProcess(database_url, admin_key=ADMIN_KEY, seed=False)
    try:
        await server.ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            slug = await agent_account(http, fake, limits={"max_concurrency": 1000})
        responses = await _burst(server.url, slug, 500)
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            rows = await settled_rows(http, slug)
    finally:
        server.stop()
    assert Counter(r.status_code for r in responses) == {200: 500}, [
        r.text for r in responses if r.status_code != 200
    ][:3]
    assert (await fake.stats())["requests_total"] == 500
    assert Counter(r["status"] for r in rows) == {"complete": 500}


async def test_a_full_queue_refuses_at_the_door_before_any_provider_call(
    database_url: str, fake: FakeProviderProcess
) -> None:
    await fake.reset(latency_s=1.0)
    env = {"SWITCHBOARD_MAX_ACTIVE_RUNS": "2", "SWITCHBOARD_RUN_QUEUE_MAX": "3"}
    server = ServerProcess(database_url, admin_key=ADMIN_KEY, seed=False, env=env)
    try:
        await server.ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            slug = await agent_account(http, fake)
        responses = await _burst(server.url, slug, 20)
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            rows = await settled_rows(http, slug)
    finally:
        server.stop()
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(ok) == 5, [r.text for r in refused][:2]  # 2 executing + 3 queued
    for response in refused:
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "SERVER_BUSY"
        assert response.headers["retry-after"]
        assert response.headers["x-should-retry"] == "true"
    assert (await fake.stats())["requests_total"] == len(ok)  # no refused request reached it
    assert len(rows) == len(ok)  # nor the ledger
