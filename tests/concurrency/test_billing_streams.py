"""Issue 10, streams: a long call is never swept while its process lives; a stream is complete
only when the provider says so; a settlement that meets a swept row restores the provider's
usage — the ledger, the budget and the provider agree."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import update

from switchboard.bootstrap import Container
from switchboard.cli.ledger import reconcile_with
from switchboard.db.base import utcnow
from switchboard.db.uow import AccountScope, UnitOfWork
from switchboard.ledger.models import ProcessLease
from switchboard.ledger.service import CallContext, TokenUsage
from switchboard.settings import Settings
from switchboard.traffic.budgets import BudgetService
from tests.concurrency.billing import (
    FAST_LEASES,
    agent_account,
    assert_complete_rows_match_the_provider,
    served,
    settled_rows,
)
from tests.conftest import ADMIN, make_settings
from tests.live import PRICE, FakeProviderProcess, live_app, sse_events


async def test_a_stream_longer_than_its_timeout_is_never_swept(
    database_url: str, fake: FakeProviderProcess
) -> None:
    await fake.reset(stream_pacing_s=0.4)
    settings = make_settings(database_url, **FAST_LEASES)  # sweeps every second
    async with (
        live_app(settings) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=60) as http,
    ):
        slug = await agent_account(http, fake, request_timeout_s=2)
        put = await http.put(f"/v1/accounts/{slug}/budget", headers=ADMIN, json={"limit_usd": "1"})
        assert put.status_code == 200, put.text
        message = " ".join(f"w{i}" for i in range(12))  # ≈ 16 chunks × 0.4 s ≈ 6 s > 2 s
        response = await http.post(
            f"/v1/accounts/{slug}/agents/bot/chat", headers=ADMIN, json={"message": message}
        )
        assert response.status_code == 200, response.text
        rows = await settled_rows(http, slug)
        budget = (await http.get(f"/v1/accounts/{slug}/budget", headers=ADMIN)).json()
    [row] = rows
    assert row["status"] == "complete"
    assert_complete_rows_match_the_provider(rows, await served(fake))
    assert response.json()["usage"]["output_tokens"] == row["output_tokens"]
    assert Decimal(budget["spent_usd"]) == Decimal(row["cost_usd"]) > 0
    assert Decimal(budget["reserved_usd"]) == 0


async def _stream_chat(http: httpx.AsyncClient, slug: str, i: int) -> dict[str, Any]:
    text, outcome = "", {}
    async with http.stream(
        "POST",
        f"/v1/accounts/{slug}/agents/bot/chat",
        headers=ADMIN,
        json={"message": f"hello number {i}", "stream": True},
    ) as response:
        assert response.status_code == 200
        async for kind, data in sse_events(response):
            if kind == "delta":
                text += data["text"]
            elif kind in ("done", "error"):
                outcome = {"kind": kind, **data}
    return {"text": text, **outcome}


async def test_cut_streams_are_errors_never_replies(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    n = 100
    await fake.reset(rate_cut=0.3, seed=11)
    async with (
        live_app(settings) as (base, app),
        httpx.AsyncClient(
            base_url=base, timeout=120, limits=httpx.Limits(max_connections=n)
        ) as http,
    ):
        slug = await agent_account(
            http,
            fake,
            limits={"max_concurrency": 25},
            retry={"attempts": 3, "base_s": 0.01, "cap_s": 0.02},
        )
        barrier = asyncio.Barrier(n)

        async def one(i: int) -> dict[str, Any]:
            await barrier.wait()
            if i % 2:  # watched live: a cut after the first words ends the run with an error
                return await _stream_chat(http, slug, i)
            response = await http.post(  # nobody watches: a cut is retried
                f"/v1/accounts/{slug}/agents/bot/chat",
                headers=ADMIN,
                json={"message": f"hello number {i}"},
            )
            body = response.json()
            if response.status_code == 200:
                return {"kind": "done", "text": body["reply"], **body}
            assert response.status_code == 503, response.text
            return {"kind": "error", **body}

        results = await asyncio.gather(*(one(i) for i in range(n)))
        rows = await settled_rows(http, slug)
        conversations = (
            await http.get(f"/v1/accounts/{slug}/conversations?limit=200", headers=ADMIN)
        ).json()["items"]
        assistant_replies = 0
        for conversation in conversations:
            messages = (
                await http.get(
                    f"/v1/accounts/{slug}/conversations/{conversation['id']}/messages",
                    headers=ADMIN,
                )
            ).json()["items"]
            for message in messages:
                if message["role"] == "assistant":
                    assistant_replies += 1
                    assert message["content"].startswith("Fake answer to: hello number")
        report = await reconcile_with(app.state.container, f"{fake.url}/_stats", accounts=[slug])
    stats = await fake.stats()
    outcomes = Counter(r["kind"] for r in results)
    assert stats["by_status"].get("cut", 0) > 10
    for i, result in enumerate(results):
        if result["kind"] == "done":
            assert result["reply"] == f"Fake answer to: hello number {i}"
            assert result["text"] == result["reply"]
        else:
            assert result["error"]["code"] == "PROVIDER_STREAM_CUT", result
            assert result["error"]["retryable"] is True
    assert outcomes["done"] == assistant_replies  # no truncated text stored as a reply
    assert len(rows) == stats["requests_total"]  # every attempt has its row
    assert_complete_rows_match_the_provider(rows, await served(fake))
    cut_rows = [r for r in rows if r["error_code"] == "PROVIDER_STREAM_CUT"]
    assert len(cut_rows) == stats["by_status"]["cut"]
    assert {r["usage_source"] for r in cut_rows} <= {"partial", "estimated"}
    assert all(r["input_tokens"] > 0 for r in cut_rows)  # never silently zero
    assert report.ok, report.differences


async def test_a_settlement_after_the_sweep_restores_the_providers_usage(
    container: Container, account: AccountScope
) -> None:
    """The process's lease expired while a call was alive (a stall longer than the TTL): the
    sweeper interrupts the row and releases its hold; the late settlement wins."""
    budgets = BudgetService(container.uow)
    await budgets.put(account, agent=None, period="day", limit_nano_usd=10_000_000)
    ctx = CallContext(
        scope=account,
        run_id=__import__("uuid").uuid4(),
        provider="fake",
        model="fake-model",
        prices={
            "fake-model": __import__("switchboard.config.schema", fromlist=["x"]).PriceConfig(
                **PRICE
            )
        },
    )
    row_id, reservation = await container.ledger.open(
        ctx, budget_hold_nano_usd=1_000_000, estimated_input_tokens=40
    )
    assert reservation is not None

    async def expire(u: UnitOfWork) -> None:
        await u.session.execute(
            update(ProcessLease)
            .where(ProcessLease.owner_id == container.ledger.lease.owner_id)
            .values(expires_at=utcnow())
        )

    await container.uow.run(expire)
    assert await container.ledger.sweep() == 1
    [swept] = await container.ledger.rows(account, [row_id])
    status = await budgets.status(account, agent=None)
    assert (swept.status, swept.usage_source, swept.input_tokens) == (
        "interrupted",
        "estimated",
        40,
    )
    assert status.reserved_nano_usd == 0  # the hold is released once, by the sweeper
    assert status.spent_nano_usd == swept.cost_nano_usd > 0

    cost = await container.ledger.finish(
        ctx,
        row_id,
        status="complete",
        usage=TokenUsage(input_tokens=123, output_tokens=45),
        latency_ms=10,
        reservation=reservation,
    )
    [row] = await container.ledger.rows(account, [row_id])
    status = await budgets.status(account, agent=None)
    assert (row.status, row.usage_source) == ("complete", "reported")
    assert (row.input_tokens, row.output_tokens, row.cost_nano_usd) == (123, 45, cost.nano_usd)
    assert status.spent_nano_usd == cost.nano_usd  # not the estimate, not twice
    assert status.reserved_nano_usd == 0
    assert container.ledger.counters.resettled._value.get() == 1
    await container.ledger.lease.renew()
