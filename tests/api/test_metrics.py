"""/metrics exposes what the operator needs, in the Prometheus text format."""

from __future__ import annotations

import asyncio
import time

import httpx

from switchboard.settings import Settings
from tests.concurrency.test_traffic import _agent
from tests.conftest import ADMIN, new_account, serving
from tests.live import FakeProviderProcess, live_app


def _value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_metrics_cover_requests_pool_ledger_and_loop(settings: Settings) -> None:
    async with serving(settings) as (_, client):
        slug, headers = await new_account(client)
        await client.get(f"/v1/accounts/{slug}", headers=headers)
        await client.get("/v1/accounts/nope", headers=headers)
        response = await client.get("/metrics", headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    # by route template, never by raw path (bounded label cardinality)
    assert (
        'switchboard_http_requests_total{method="GET",route="/v1/accounts/{account}",'
        'status="200"} 1.0'
    ) in text
    assert 'status="404"' in text
    assert f"/v1/accounts/{slug}" not in text
    for name in (
        "switchboard_db_pool_checked_out",
        "switchboard_db_pool_overflow",
        "switchboard_ledger_rows_pending",
        "switchboard_event_loop_lag_seconds",
        "switchboard_http_request_duration_seconds_bucket",
    ):
        assert name in text, name


async def test_provider_metrics_show_limits_waits_retries_and_refusals(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    await fake.reset(rate_429=0.5, retry_after_s=0.01, latency_s=0.05, seed=3)
    async with (
        live_app(settings) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=60) as http,
    ):
        slug = await _agent(
            http,
            fake,
            limits={"max_concurrency": 2},
            retry={"attempts": 20, "base_s": 0.01, "cap_s": 0.02},
        )
        await asyncio.gather(
            *(
                http.post(
                    f"/v1/accounts/{slug}/agents/bot/chat", headers=ADMIN, json={"message": f"m{i}"}
                )
                for i in range(10)
            )
        )
        await http.put(
            f"/v1/accounts/{slug}/budget", headers=ADMIN, json={"limit_usd": "0", "period": "day"}
        )
        refused = await http.post(
            f"/v1/accounts/{slug}/agents/bot/chat", headers=ADMIN, json={"message": "over budget"}
        )
        text = (await http.get("/metrics", headers=ADMIN)).text
    assert refused.status_code == 402
    assert _value(text, "switchboard_budget_refusals_total") == 1
    assert (
        _value(
            text,
            'switchboard_provider_retries_total{code="PROVIDER_RATE_LIMITED"'
            ',error_class="transient"}',
        )
        > 0
    )
    assert _value(text, 'switchboard_limiter_wait_seconds_count{provider="fake"}') >= 10
    assert _value(text, 'switchboard_provider_calls_in_flight{provider="fake"}') == 0


async def test_event_loop_lag_is_measured(settings: Settings) -> None:
    async with serving(settings) as (app, client):
        gauge = app.state.container.metrics.loop_lag
        await asyncio.sleep(0.05)  # the monitor is inside its 0.25 s timer
        time.sleep(0.4)  # noqa: ASYNC251 - a deliberate 0.4 s stall of the loop, to be measured
        for _ in range(5):
            await asyncio.sleep(0)  # let the overdue monitor run once
        lag = gauge._value.get()
        text = (await client.get("/metrics", headers=ADMIN)).text
    assert lag >= 0.1  # its 0.25 s timer fired at least 0.15 s late
    assert "switchboard_event_loop_lag_seconds" in text
