"""The per-day usage rollup equals the ledger after concurrent load over real HTTP — provider
errors, cut streams, clients that disconnect, runs cancelled — and after the sweep of a killed
server's calls: every state change of a ledger row changed its rollup row in the same unit of
work. ``verify_rollup`` compares the two in one snapshot."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from switchboard.bootstrap import Container
from switchboard.db.uow import AccountScope
from switchboard.settings import Settings
from tests.concurrency.billing import FAST_LEASES_ENV, agent_account, settled_rows
from tests.concurrency.test_billing_crash import _hold_streams
from tests.conftest import ADMIN, ADMIN_KEY
from tests.live import FakeProviderProcess, ServerProcess, live_app, sse_events

WORDS = " ".join(f"w{i}" for i in range(20))  # a reply of ≈ 25 chunks


async def _assert_rollup_equals_ledger(
    container: Container, slug: str, rows: list[dict[str, Any]]
) -> Counter[str]:
    found = await container.tenancy.get_account(slug)
    scope = AccountScope(found.id, found.slug)
    check = await container.ledger.check_rollup(account_ids=[scope.id])
    assert check.mismatches == [], check.mismatches
    today = datetime.now(UTC).date()
    rollup = await container.ledger.rollup(
        scope, since=today - timedelta(days=1), until=today + timedelta(days=1)
    )
    assert sum(r.requests for r in rollup) == len(rows)
    assert sum(r.input_tokens for r in rollup) == sum(r["input_tokens"] for r in rows)
    statuses: Counter[str] = Counter()
    for r in rollup:
        statuses[r.status] += r.requests
    assert statuses == Counter(r["status"] for r in rows)
    return statuses


async def test_the_rollup_equals_the_ledger_after_a_faulty_load_with_cancellations(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    n = 60
    await fake.reset(stream_pacing_s=0.02, rate_500=0.15, rate_cut=0.15, rate_400=0.05, seed=5)
    async with (
        live_app(settings) as (base, app),
        httpx.AsyncClient(
            base_url=base, headers=ADMIN, timeout=60, limits=httpx.Limits(max_connections=n)
        ) as http,
    ):
        slug = await agent_account(
            http,
            fake,
            limits={"max_concurrency": 20},
            retry={"attempts": 2, "base_s": 0.01, "cap_s": 0.02},
        )
        chat = f"/v1/accounts/{slug}/agents/bot/chat"
        runs = f"/v1/accounts/{slug}/agents/bot/runs"
        barrier = asyncio.Barrier(n)

        async def one(i: int) -> str:
            await barrier.wait()
            message = f"{WORDS} {i}"
            if i % 4 == 0:  # JSON: answered, or an error after the retries
                response = await http.post(chat, json={"message": message})
                return str(response.status_code)
            if i % 4 == 3:  # a background run, cancelled while its call streams
                created = await http.post(runs, json={"message": message, "background": True})
                assert created.status_code == 202, created.text
                await asyncio.sleep(0.1)
                cancelled = await http.post(f"{runs}/{created.json()['id']}/cancel")
                assert cancelled.status_code == 200, cancelled.text
                return "run cancelled"
            async with http.stream("POST", chat, json={"message": message, "stream": True}) as r:
                deltas = 0
                async for kind, _ in sse_events(r):
                    deltas += kind == "delta"
                    if i % 4 == 2 and deltas == 2:
                        return "disconnected"  # the client goes away mid-answer
                    if kind in ("done", "error"):
                        return kind
            return "ended"

        outcomes = Counter(await asyncio.gather(*(one(i) for i in range(n))))
        rows = await settled_rows(http, slug)
        statuses = await _assert_rollup_equals_ledger(app.state.container, slug, rows)
    stats = await fake.stats()
    # The load took every path a settlement can take (a call cancelled before it left has a
    # row the provider never counted: rows ≥ the provider's calls).
    assert len(rows) >= stats["requests_total"] > 0
    assert outcomes["disconnected"] > 0
    assert outcomes["run cancelled"] == n // 4
    assert {"complete", "error", "cancelled"} <= set(statuses), statuses
    assert stats["by_status"].get("cut", 0) > 0
    assert stats["by_status"].get("500", 0) > 0


async def test_the_rollup_equals_the_ledger_after_a_killed_servers_calls_are_swept(
    database_url: str, fake: FakeProviderProcess, container: Container
) -> None:
    n = 10
    await fake.reset(stream_pacing_s=0.2)
    server = ServerProcess(database_url, admin_key=ADMIN_KEY, env=FAST_LEASES_ENV)
    restarted: ServerProcess | None = None
    try:
        await server.ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            slug = await agent_account(
                http, fake, request_timeout_s=2, limits={"max_concurrency": n}
            )
            answered = await http.post(  # one settled call before the kill
                f"/v1/accounts/{slug}/agents/bot/chat", headers=ADMIN, json={"message": "hi"}
            )
            assert answered.status_code == 200, answered.text
        started = asyncio.Barrier(n + 1)
        held = await _hold_streams(server.url, slug, n, started)
        async with asyncio.timeout(30):
            await started.wait()  # n calls in flight, each mid-answer
        server.kill()
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        restarted = ServerProcess(database_url, admin_key=ADMIN_KEY, env=FAST_LEASES_ENV)
        await restarted.ready()
        async with httpx.AsyncClient(base_url=restarted.url, timeout=30) as http:
            rows = await settled_rows(http, slug, timeout_s=15)
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()
    statuses = await _assert_rollup_equals_ledger(container, slug, rows)
    assert statuses == Counter({"interrupted": n, "complete": 1})
