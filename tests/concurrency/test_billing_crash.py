"""Issue 10, owners: a pending row is swept only when the process that owns it is dead —
within the lease TTL plus one sweep — and never while its owner lives, however long the call."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.concurrency.billing import (
    FAST_LEASES,
    FAST_LEASES_ENV,
    agent_account,
    assert_complete_rows_match_the_provider,
    served,
    settled_rows,
)
from tests.conftest import ADMIN, ADMIN_KEY
from tests.live import FakeProviderProcess, ServerProcess, sse_events

N = 50
CYCLES = 10
TTL = FAST_LEASES["ledger_lease_ttl_s"]
SWEEP = FAST_LEASES["ledger_sweep_interval_s"]
LONG = " ".join(f"w{i}" for i in range(60))  # a reply of ≈ 60 chunks: far longer than a cycle


async def _hold_streams(base: str, slug: str, n: int, started: asyncio.Barrier) -> list[Any]:
    """Open ``n`` streams; each waits at ``started`` once it has a delta, then stays open."""

    async def one(i: int) -> None:
        async with httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=60) as client:
            try:
                async with client.stream(
                    "POST",
                    f"/v1/accounts/{slug}/agents/bot/chat",
                    json={"message": f"{LONG} {i}", "stream": True},
                ) as response:
                    async for kind, _ in sse_events(response):
                        if kind == "delta":
                            await started.wait()
                            await asyncio.Event().wait()
            except httpx.HTTPError:
                pass  # the server died under us

    return [asyncio.create_task(one(i)) for i in range(n)]


async def test_sigkill_with_50_calls_in_flight_ten_times(
    database_url: str, fake: FakeProviderProcess
) -> None:
    await fake.reset(stream_pacing_s=0.5)
    server = ServerProcess(database_url, admin_key=ADMIN_KEY, env=FAST_LEASES_ENV)
    try:
        await server.ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            slug = await agent_account(
                http, fake, request_timeout_s=2, limits={"max_concurrency": N}
            )
        for cycle in range(CYCLES):
            started = asyncio.Barrier(N + 1)
            tasks = await _hold_streams(server.url, slug, N, started)
            async with asyncio.timeout(30):
                await started.wait()  # N calls in flight, each mid-answer
            server.kill()
            killed_at = time.monotonic()
            server.stop()  # closes its log
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            server = ServerProcess(database_url, admin_key=ADMIN_KEY, env=FAST_LEASES_ENV)
            await server.ready()
            ready_at = time.monotonic()
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                rows = await settled_rows(http, slug, timeout_s=15)
            swept_at = time.monotonic()
            # Swept at the restart's start-up sweep, or one sweep after the lease expired.
            assert swept_at - max(killed_at + TTL, ready_at) <= SWEEP + 1.0, cycle
            stats = await fake.stats()
            assert len(rows) == stats["requests_total"] == N * (cycle + 1), cycle
            assert {(r["status"], r["error_code"]) for r in rows} == {
                ("interrupted", "INTERRUPTED")
            }
            assert all(r["usage_source"] == "estimated" and r["input_tokens"] > 0 for r in rows)
    finally:
        server.stop()


async def test_the_survivors_long_calls_are_never_swept(
    database_url: str, fake: FakeProviderProcess
) -> None:
    n = 10
    await fake.reset(stream_pacing_s=0.2)
    doomed = ServerProcess(database_url, admin_key=ADMIN_KEY, env=FAST_LEASES_ENV)
    survivor = ServerProcess(database_url, admin_key=ADMIN_KEY, env=FAST_LEASES_ENV)
    try:
        await doomed.ready()
        await survivor.ready()
        async with httpx.AsyncClient(base_url=survivor.url, timeout=60) as http:
            # Each call runs ≈ 12 s, far past its request_timeout_s and the doomed one's TTL.
            slug = await agent_account(
                http, fake, request_timeout_s=1, limits={"max_concurrency": 2 * n}
            )
            started = asyncio.Barrier(2 * n + 1)
            held = await _hold_streams(doomed.url, slug, n, started)

            async def survive(i: int) -> dict[str, Any]:
                outcome: dict[str, Any] = {}
                async with http.stream(
                    "POST",
                    f"/v1/accounts/{slug}/agents/bot/chat",
                    headers=ADMIN,
                    json={"message": f"{LONG} s{i}", "stream": True},
                ) as response:
                    waited = False
                    async for kind, data in sse_events(response):
                        if kind == "delta" and not waited:
                            waited = True
                            await started.wait()
                        elif kind in ("done", "error"):
                            outcome = {"kind": kind, **data}
                return outcome

            surviving = [asyncio.create_task(survive(i)) for i in range(n)]
            async with asyncio.timeout(30):
                await started.wait()
            doomed.kill()
            for task in held:
                task.cancel()
            await asyncio.gather(*held, return_exceptions=True)
            async with asyncio.timeout(60):
                outcomes = await asyncio.gather(*surviving)
            rows = await settled_rows(http, slug)
            metrics = (await http.get("/metrics", headers=ADMIN)).text
    finally:
        doomed.stop()
        survivor.stop()
    assert [o["kind"] for o in outcomes] == ["done"] * n
    mine = {str(i) for o in outcomes for i in o["llm_request_ids"]}
    assert len(mine) == n
    assert len(rows) == (await fake.stats())["requests_total"] == 2 * n
    assert {r["status"] for r in rows if r["id"] in mine} == {"complete"}
    assert {r["status"] for r in rows if r["id"] not in mine} == {"interrupted"}
    assert_complete_rows_match_the_provider(rows, await served(fake))
    assert "switchboard_ledger_rows_resettled_total 0.0" in metrics  # never swept, not even once
