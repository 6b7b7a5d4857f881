"""Rule 7 end to end: one admission path for every provider call — limits hold under load and
across processes, retries only for transient errors (each attempt its own ledger row), budgets
never overspent, and no slot or reservation outlives its call."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import pytest

from switchboard.settings import Settings
from tests.concurrency.test_chat_load import _all_rows
from tests.conftest import ADMIN, ADMIN_KEY, make_settings, unique
from tests.live import (
    FakeProviderProcess,
    ServerProcess,
    fake_agent_body,
    live_app,
    live_server,
    sse_events,
)


async def _agent(http: httpx.AsyncClient, fake: FakeProviderProcess, **body: Any) -> str:
    slug = unique("traffic")
    assert (
        await http.post("/v1/accounts", json={"slug": slug, "name": slug}, headers=ADMIN)
    ).status_code == 201
    created = await http.post(
        f"/v1/accounts/{slug}/agents", headers=ADMIN, json=fake_agent_body("bot", fake.url, **body)
    )
    assert created.status_code == 201, created.text
    return slug


async def _chats(http: httpx.AsyncClient, slug: str, n: int) -> list[httpx.Response]:
    barrier = asyncio.Barrier(n)

    async def one(i: int) -> httpx.Response:
        await barrier.wait()
        return await http.post(
            f"/v1/accounts/{slug}/agents/bot/chat", headers=ADMIN, json={"message": f"hello {i}"}
        )

    return await asyncio.gather(*(one(i) for i in range(n)))


async def test_200_concurrent_chats_never_exceed_the_provider_limit(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    await fake.reset(latency_s=0.2)
    async with (
        live_app(settings) as (base, app),
        httpx.AsyncClient(
            base_url=base, timeout=120, limits=httpx.Limits(max_connections=200)
        ) as http,
    ):
        slug = await _agent(http, fake, limits={"max_concurrency": 5})
        responses = await _chats(http, slug, 200)
        limiter = app.state.container.limiter
    assert Counter(r.status_code for r in responses) == {200: 200}
    stats = await fake.stats()
    assert stats["requests_total"] == 200
    assert stats["in_flight_max"] == 5  # the limit was reached, and never exceeded
    assert limiter.snapshot()
    assert all(v == (0, 0) for v in limiter.snapshot().values())


async def test_rate_limited_calls_are_retried_each_attempt_its_own_row(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    await fake.reset(rate_429=0.3, retry_after_s=0.01, seed=7)
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=120) as http:
        slug = await _agent(http, fake, retry={"attempts": 12, "base_s": 0.01, "cap_s": 0.05})
        responses = await _chats(http, slug, 100)
        rows = await _all_rows(http, slug)
    assert Counter(r.status_code for r in responses) == {200: 100}
    stats = await fake.stats()
    assert stats["by_status"]["429"] > 0
    assert len(rows) == stats["requests_total"]  # every attempt has its row
    statuses = Counter((r["status"], r["error_code"]) for r in rows)
    assert statuses == {
        ("complete", None): 100,
        ("error", "PROVIDER_RATE_LIMITED"): stats["by_status"]["429"],
    }


async def test_a_permanent_error_is_never_retried(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    await fake.reset(rate_400=1.0)
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=60) as http:
        slug = await _agent(http, fake)
        response = await http.post(
            f"/v1/accounts/{slug}/agents/bot/chat", headers=ADMIN, json={"message": "hello"}
        )
        rows = await _all_rows(http, slug)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "PROVIDER_PERMANENT_ERROR"
    assert response.json()["error"]["retryable"] is False
    assert (await fake.stats())["requests_total"] == 1
    assert [(r["status"], r["error_class"]) for r in rows] == [("error", "permanent")]


async def test_budget_is_never_overspent_under_200_concurrent_chats(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    async with (
        live_server(settings) as base,
        httpx.AsyncClient(
            base_url=base, timeout=120, limits=httpx.Limits(max_connections=200)
        ) as http,
    ):
        slug = await _agent(
            http, fake, model_settings={"max_tokens": 20}, limits={"max_concurrency": 50}
        )
        put = await http.put(
            f"/v1/accounts/{slug}/budget",
            headers=ADMIN,
            json={"limit_usd": "0.00025", "period": "day"},
        )
        assert put.status_code == 200, put.text
        responses = await _chats(http, slug, 200)
        budget = (await http.get(f"/v1/accounts/{slug}/budget", headers=ADMIN)).json()
        rows = await _all_rows(http, slug)
    outcomes = Counter(r.status_code for r in responses)
    assert set(outcomes) == {200, 402}
    assert outcomes[200] >= 10
    assert all(
        r.json()["error"]["code"] == "BUDGET_EXCEEDED" for r in responses if r.status_code == 402
    )
    spent = Decimal(budget["spent_usd"])
    assert spent <= Decimal(budget["limit_usd"])
    assert spent == sum(Decimal(str(r["cost_usd"])) for r in rows)
    assert Decimal(budget["reserved_usd"]) == 0
    assert len(rows) == outcomes[200] == (await fake.stats())["requests_total"]


async def _wait_settled(http: httpx.AsyncClient, slug: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + 15
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = await _all_rows(http, slug)
        if rows and all(r["status"] != "pending" for r in rows):
            return rows
        await asyncio.sleep(0.05)
    return rows


@pytest.mark.parametrize("scenario", ["disconnect", "timeout", "cut_stream"])
async def test_no_slot_or_reservation_outlives_its_call(
    settings: Settings, fake: FakeProviderProcess, scenario: str
) -> None:
    behaviour = {
        "disconnect": {"stream_pacing_s": 0.05},
        "timeout": {"rate_hang": 1.0},
        "cut_stream": {"rate_cut": 1.0},
    }[scenario]
    await fake.reset(**behaviour)
    async with (
        live_app(settings) as (base, app),
        httpx.AsyncClient(base_url=base, timeout=30) as http,
    ):
        slug = await _agent(http, fake, request_timeout_s=0.5, retry={"attempts": 1})
        await http.put(f"/v1/accounts/{slug}/budget", headers=ADMIN, json={"limit_usd": "5"})
        message = " ".join(f"w{i}" for i in range(100))
        if scenario == "disconnect":
            async with http.stream(
                "POST",
                f"/v1/accounts/{slug}/agents/bot/chat",
                headers=ADMIN,
                json={"message": message, "stream": True},
            ) as response:
                async for kind, _ in sse_events(response):
                    if kind == "delta":
                        break
        else:
            response = await http.post(
                f"/v1/accounts/{slug}/agents/bot/chat", headers=ADMIN, json={"message": message}
            )
            if scenario == "timeout":
                assert response.status_code == 503
                assert response.json()["error"]["code"] == "PROVIDER_TIMEOUT"
        rows = await _wait_settled(http, slug)
        budget = (await http.get(f"/v1/accounts/{slug}/budget", headers=ADMIN)).json()
        limiter = app.state.container.limiter
        assert all(in_use == 0 for in_use, _ in limiter.snapshot().values())
    assert rows
    assert all(r["status"] != "pending" for r in rows)
    assert Decimal(budget["reserved_usd"]) == 0
    assert Decimal(budget["spent_usd"]) == sum(Decimal(str(r["cost_usd"])) for r in rows)


# --- across processes, through Redis --------------------------------------------------------


async def test_two_server_processes_share_the_limit_through_redis(
    database_url: str, redis_url: str, fake: FakeProviderProcess, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("several processes on one database: PostgreSQL")
    await fake.reset(latency_s=0.1)
    provider = f"fake{uuid.uuid4().hex[:8]}"  # its own Redis keys
    servers = [
        ServerProcess(database_url, admin_key=ADMIN_KEY, env={"SWITCHBOARD_REDIS_URL": redis_url})
        for _ in range(2)
    ]
    try:
        for server in servers:
            await server.ready()
        async with httpx.AsyncClient(base_url=servers[0].url, timeout=60) as http:
            slug = await _agent(http, fake, provider=provider, limits={"max_concurrency": 5})
        barrier = asyncio.Barrier(60)

        async def one(i: int) -> int:
            async with httpx.AsyncClient(base_url=servers[i % 2].url, timeout=60) as client:
                await barrier.wait()
                response = await client.post(
                    f"/v1/accounts/{slug}/agents/bot/chat", headers=ADMIN, json={"message": f"m{i}"}
                )
                return response.status_code

        statuses = Counter(await asyncio.gather(*(one(i) for i in range(60))))
    finally:
        for server in servers:
            server.stop()
    assert statuses == {200: 60}
    stats = await fake.stats()
    assert stats["requests_total"] == 60
    assert stats["in_flight_max"] <= 5


async def test_unreachable_redis_fails_closed(database_url: str, fake: FakeProviderProcess) -> None:
    settings = make_settings(database_url, redis_url="redis://127.0.0.1:1/0")
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        slug = await _agent(http, fake)
        response = await http.post(
            f"/v1/accounts/{slug}/agents/bot/chat", headers=ADMIN, json={"message": "hello"}
        )
        rows = await _all_rows(http, slug)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "LIMITER_UNAVAILABLE"
    assert response.headers["retry-after"]
    assert (await fake.stats())["requests_total"] == 0  # refused, not sent unlimited
    assert rows == []


async def test_a_crashed_holders_lease_expires(redis_url: str) -> None:
    from switchboard.traffic.limits import Admission, LimitSpec
    from switchboard.traffic.redis_limiter import PREFIX, RedisLimiter

    key = f"lease-{uuid.uuid4().hex[:8]}"
    limiter = RedisLimiter(redis_url, lease_ttl_s=0.5)
    admission = Admission(specs=(LimitSpec(key, 1, None, None),), queue_timeout_s=5)
    try:
        # A process took the only slot (a 0.5 s lease) and died: nobody renews or releases it.
        await limiter._acquire(keys=[f"{PREFIX}:slots:{key}"], args=[1, 500, "dead:process"])
        assert await limiter.held(key) == 1
        started = time.monotonic()
        async with limiter.admit(admission, tokens=1):
            waited = time.monotonic() - started
            assert await limiter.held(key) == 1
        assert 0.2 < waited < 5  # got the slot once the dead lease expired
        assert await limiter.held(key) == 0  # and released its own
    finally:
        await limiter.aclose()
