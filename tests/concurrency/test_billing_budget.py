"""Issue 10, budgets: a call is refused only when the money is gone (spent + its own worst case
over the limit); calls held up by in-flight reservations wait for them to settle. Never an
overspend."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

import httpx

from switchboard.settings import Settings
from tests.concurrency.billing import agent_account, settled_rows
from tests.conftest import ADMIN
from tests.live import FakeProviderProcess, live_server

CONCURRENCY = 50


async def _budget(
    http: httpx.AsyncClient, slug: str, limit: Decimal | None = None
) -> dict[str, str]:
    if limit is not None:
        put = await http.put(
            f"/v1/accounts/{slug}/budget",
            headers=ADMIN,
            json={"limit_usd": str(limit), "period": "day"},
        )
        assert put.status_code == 200, put.text
    return (await http.get(f"/v1/accounts/{slug}/budget", headers=ADMIN)).json()  # type: ignore[no-any-return]


async def _chats(http: httpx.AsyncClient, slug: str, n: int, tag: str) -> list[httpx.Response]:
    barrier = asyncio.Barrier(n)

    async def one(i: int) -> httpx.Response:
        await barrier.wait()
        return await http.post(
            f"/v1/accounts/{slug}/agents/bot/chat",
            headers=ADMIN,
            json={"message": f"hello {tag} {i:03d}"},
        )

    return await asyncio.gather(*(one(i) for i in range(n)))


async def test_no_402_while_the_money_is_there_and_never_an_overspend(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    async with (
        live_server(settings) as base,
        httpx.AsyncClient(
            base_url=base, timeout=120, limits=httpx.Limits(max_connections=200)
        ) as http,
    ):
        slug = await agent_account(
            http,
            fake,
            model_settings={"max_tokens": 400},
            limits={"max_concurrency": CONCURRENCY},
        )
        # The worst case of one call, as the refusal of a tiny budget reports it.
        await _budget(http, slug, Decimal("0.000000001"))
        [refused] = await _chats(http, slug, 1, "probe")
        assert refused.status_code == 402
        worst = Decimal(refused.json()["error"]["details"]["worst_case_usd"])
        # What one call really costs.
        await _budget(http, slug, Decimal("1"))
        [probe] = await _chats(http, slug, 1, "probe")
        assert probe.status_code == 200, probe.text
        cost = Decimal(probe.json()["cost_usd"])

        # Enough money for 200 calls, but not for the worst cases of 50 calls in flight: the
        # old rule refused most of them.
        spent = Decimal((await _budget(http, slug))["spent_usd"])
        limit = spent + 200 * cost * Decimal("1.3")
        assert CONCURRENCY * worst > limit - spent
        await _budget(http, slug, limit)
        first = await _chats(http, slug, 200, "a")
        assert Counter(r.status_code for r in first) == {200: 200}

        # Then more calls than the money left: refused only once spent + worst > limit.
        more = await _chats(http, slug, 120, "b")
        budget = await _budget(http, slug)
        rows = await settled_rows(http, slug)
    outcomes = Counter(r.status_code for r in more)
    assert set(outcomes) == {200, 402}, outcomes
    for response in more:
        if response.status_code == 402:
            details = response.json()["error"]["details"]
            assert Decimal(details["spent_usd"]) + Decimal(details["worst_case_usd"]) > Decimal(
                details["limit_usd"]
            )
    spent = Decimal(budget["spent_usd"])
    assert spent <= Decimal(budget["limit_usd"])  # no overspend
    assert spent == sum(Decimal(str(r["cost_usd"])) for r in rows)
    assert Decimal(budget["reserved_usd"]) == 0
    assert len(rows) == (await fake.stats())["requests_total"] == 1 + 200 + outcomes[200]
