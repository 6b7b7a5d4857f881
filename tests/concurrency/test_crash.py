"""Rule 5 survives a crash: the server is SIGKILLed while 20 streams are open. Every provider
call already has its ledger row (written ahead); after a restart the sweeper marks the ones
that never finished ``interrupted``."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.conftest import ADMIN_KEY, unique
from tests.live import FakeProviderProcess, ServerProcess, fake_agent_body, sse_events

N = 20
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


SWEEP_FAST = {
    "SWITCHBOARD_LEDGER_SWEEP_INTERVAL_S": "0.2",
    "SWITCHBOARD_LEDGER_LEASE_TTL_S": "1",
    "SWITCHBOARD_LEDGER_HEARTBEAT_INTERVAL_S": "0.3",
}


async def test_sigkill_mid_stream_leaves_no_unrecorded_call(
    database_url: str, fake: FakeProviderProcess
) -> None:
    await fake.reset(stream_pacing_s=0.2)
    server = ServerProcess(database_url, admin_key=ADMIN_KEY, env=SWEEP_FAST)
    base = server.url
    try:
        await server.ready()
        slug = unique("crash")
        async with httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=30) as http:
            await http.post("/v1/accounts", json={"slug": slug, "name": slug})
            # All N streams at once (none finishes before the kill), each longer than its
            # request_timeout_s: only the owner's death gets a row swept.
            body = fake_agent_body(
                "bot", fake.url, request_timeout_s=1, limits={"max_concurrency": N}
            )
            assert (await http.post(f"/v1/accounts/{slug}/agents", json=body)).status_code == 201

        streaming = asyncio.Barrier(N + 1)

        async def open_stream(i: int) -> None:
            async with httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=30) as client:
                try:
                    async with client.stream(
                        "POST",
                        f"/v1/accounts/{slug}/agents/bot/chat",
                        json={"message": " ".join(["long"] * 100) + f" {i}", "stream": True},
                    ) as response:
                        async for kind, _ in sse_events(response):
                            if kind == "delta":
                                await streaming.wait()  # this stream is mid-answer
                                await asyncio.Event().wait()  # and stays open until the kill
                except httpx.HTTPError:
                    pass  # the server died under us: expected

        tasks = [asyncio.create_task(open_stream(i)) for i in range(N)]
        async with asyncio.timeout(30):
            await streaming.wait()
        server.kill()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.stop()

    provider_calls = (await fake.stats())["requests_total"]
    assert provider_calls == N

    restarted = ServerProcess(database_url, admin_key=ADMIN_KEY, port=server.port, env=SWEEP_FAST)
    try:
        await restarted.ready()
        async with httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=30) as http:
            rows: list[dict[str, object]] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                page = await http.get(f"/v1/accounts/{slug}/llm-requests", params={"limit": 200})
                rows = page.json()["items"]
                if rows and all(r["status"] != "pending" for r in rows):
                    break
                await asyncio.sleep(0.2)
    finally:
        restarted.stop()
    assert len(rows) == provider_calls  # no provider call without its ledger row
    assert {r["status"] for r in rows} == {"interrupted"}
    assert {r["error_code"] for r in rows} == {"INTERRUPTED"}
