"""Rule 5 under load: every provider call has exactly one ledger row, settled with the tokens
the provider reported and an exact cost — over real HTTP, against the fake provider."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from decimal import Decimal

import httpx

from switchboard.settings import Settings
from tests.conftest import ADMIN, unique
from tests.live import PRICE, FakeProviderProcess, fake_agent_body, live_server, sse_events

MTOK = Decimal(1_000_000)


async def _setup(http: httpx.AsyncClient, fake: FakeProviderProcess, **agent: object) -> str:
    slug = unique("load")
    assert (
        await http.post("/v1/accounts", json={"slug": slug, "name": slug}, headers=ADMIN)
    ).status_code == 201
    body = fake_agent_body("bot", fake.url, **agent)  # type: ignore[arg-type]
    created = await http.post(f"/v1/accounts/{slug}/agents", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    return slug


async def _all_rows(http: httpx.AsyncClient, slug: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = (
            await http.get(f"/v1/accounts/{slug}/llm-requests", params=params, headers=ADMIN)
        ).json()
        rows += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def _expected_cost(row: dict[str, object]) -> Decimal:
    exact = (
        Decimal(str(row["input_tokens"])) * Decimal(PRICE["input_per_mtok"])
        + Decimal(str(row["output_tokens"])) * Decimal(PRICE["output_per_mtok"])
    ) / MTOK
    return exact.quantize(Decimal("0.000000001"))


async def test_200_concurrent_chats_with_parallel_tools_reconcile_with_the_provider(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    n = 200
    async with (
        live_server(settings) as base,
        httpx.AsyncClient(
            base_url=base, timeout=120, limits=httpx.Limits(max_connections=n)
        ) as http,
    ):
        slug = await _setup(http, fake, tools=["remember", "current_time"])
        barrier = asyncio.Barrier(n)

        async def one(i: int) -> dict[str, object]:
            await barrier.wait()
            response = await http.post(
                f"/v1/accounts/{slug}/agents/bot/chat",
                headers=ADMIN,
                json={"message": f"note {i}", "user": f"u{i}"},
            )
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        replies = await asyncio.gather(*(one(i) for i in range(n)))
        stats = await fake.stats()
        rows = await _all_rows(http, slug)

    assert stats["requests_total"] == 2 * n  # tool calls, then an answer, per chat
    assert stats["in_flight"] == 0
    assert len(rows) == stats["requests_total"]
    assert Counter(r["status"] for r in rows) == {"complete": 2 * n}
    assert sum(int(str(r["input_tokens"])) for r in rows) == stats["prompt_tokens"]
    assert sum(int(str(r["output_tokens"])) for r in rows) == stats["completion_tokens"]
    for row in rows:
        assert Decimal(str(row["cost_usd"])) == _expected_cost(row)
    assert {str(i) for r in replies for i in r["llm_request_ids"]} == {  # type: ignore[attr-defined]
        str(r["id"]) for r in rows
    }
    assert all("Based on 2 tool results: remembered" in str(r["reply"]) for r in replies)


async def test_client_disconnect_cancels_the_run_and_keeps_partial_usage(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    await fake.reset(stream_pacing_s=0.05)
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        slug = await _setup(http, fake)
        message = " ".join(f"word{i}" for i in range(200))  # a long, slowly streamed answer
        async with http.stream(
            "POST",
            f"/v1/accounts/{slug}/agents/bot/chat",
            headers=ADMIN,
            json={"message": message, "stream": True},
        ) as response:
            deltas = 0
            async for kind, _ in sse_events(response):
                if kind == "delta":
                    deltas += 1
                if deltas == 5:
                    break  # the client goes away mid-stream
        rows: list[dict[str, object]] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            rows = await _all_rows(http, slug)
            if rows and all(r["status"] != "pending" for r in rows):
                break
            await asyncio.sleep(0.05)
    assert [r["status"] for r in rows] == ["cancelled"]
    row = rows[0]
    assert int(str(row["input_tokens"])) > 200  # the prompt, as the provider reported it
    assert 0 < int(str(row["output_tokens"])) < 200  # partial: the stream was cut short
    assert Decimal(str(row["cost_usd"])) == _expected_cost(row)
    assert row["error_code"] == "CANCELLED"


async def test_50_concurrent_first_messages_to_one_new_conversation(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    n = 50
    conversation = str(uuid.uuid4())
    async with (
        live_server(settings) as base,
        httpx.AsyncClient(
            base_url=base, timeout=60, limits=httpx.Limits(max_connections=n)
        ) as http,
    ):
        slug = await _setup(http, fake)
        barrier = asyncio.Barrier(n)

        async def send(i: int) -> int:
            await barrier.wait()
            response = await http.post(
                f"/v1/accounts/{slug}/agents/bot/chat",
                headers=ADMIN,
                json={"message": f"m{i}", "conversation_id": conversation},
            )
            assert response.status_code == 200, response.text
            assert response.json()["conversation_id"] == conversation
            return response.status_code

        await asyncio.gather(*(send(i) for i in range(n)))
        listed = (await http.get(f"/v1/accounts/{slug}/conversations", headers=ADMIN)).json()
        messages = (
            await http.get(
                f"/v1/accounts/{slug}/conversations/{conversation}/messages",
                params={"limit": 200},
                headers=ADMIN,
            )
        ).json()["items"]
    assert [c["id"] for c in listed["items"]] == [conversation]
    seqs = [m["seq"] for m in messages]
    assert len(seqs) == len(set(seqs)) == 2 * n  # 50 user messages and 50 replies
    assert sorted(seqs) == list(range(1, 2 * n + 1))
    assert Counter(m["role"] for m in messages) == {"user": n, "assistant": n}


async def test_default_conversation_is_created_once_under_a_race(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    n = 20
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=60) as http:
        slug = await _setup(http, fake)
        barrier = asyncio.Barrier(n)

        async def send() -> str:
            await barrier.wait()
            response = await http.post(
                f"/v1/accounts/{slug}/agents/bot/chat",
                headers=ADMIN,
                json={"message": "hi", "conversation_id": "default", "user": "alice"},
            )
            assert response.status_code == 200, response.text
            return str(response.json()["conversation_id"])

        ids = set(await asyncio.gather(*(send() for _ in range(n))))
        other = await http.post(
            f"/v1/accounts/{slug}/agents/bot/chat",
            headers=ADMIN,
            json={"message": "hi", "conversation_id": "default", "user": "bob"},
        )
    assert len(ids) == 1
    assert other.json()["conversation_id"] not in ids


async def test_a_model_without_a_price_is_recorded_unpriced_with_its_tokens(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        slug = await _setup(http, fake, prices={})
        await http.patch(
            f"/v1/accounts/{slug}/agents/bot",
            headers=ADMIN,
            json={"model": "fake:unlisted-model-xyz"},
        )
        response = await http.post(
            f"/v1/accounts/{slug}/agents/bot/chat", headers=ADMIN, json={"message": "hello"}
        )
        assert response.status_code == 200, response.text
        [row] = await _all_rows(http, slug)
        usage = (await http.get(f"/v1/accounts/{slug}/usage", headers=ADMIN)).json()
    assert row["priced"] is False
    assert row["cost_usd"] == "0.000000000"
    assert int(str(row["input_tokens"])) > 0
    assert usage["total"]["unpriced_requests"] == 1
