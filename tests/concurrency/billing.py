"""Helpers of the billing tests: an account with a fake-provider agent, the provider's own
record of each response, and waiting (bounded) for ledger rows to settle."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.concurrency.test_chat_load import _all_rows
from tests.conftest import ADMIN, unique
from tests.live import FakeProviderProcess, fake_agent_body

FAST_LEASES = {
    "ledger_sweep_interval_s": 1.0,
    "ledger_lease_ttl_s": 1.0,
    "ledger_heartbeat_interval_s": 0.25,
}
FAST_LEASES_ENV = {f"SWITCHBOARD_{k.upper()}": str(v) for k, v in FAST_LEASES.items()}


async def agent_account(http: httpx.AsyncClient, fake: FakeProviderProcess, **agent: Any) -> str:
    slug = unique("bill")
    created = await http.post("/v1/accounts", json={"slug": slug, "name": slug}, headers=ADMIN)
    assert created.status_code == 201, created.text
    body = fake_agent_body("bot", fake.url, **agent)
    response = await http.post(f"/v1/accounts/{slug}/agents", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return slug


async def served(fake: FakeProviderProcess) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{fake.url}/_stats/responses")).json()  # type: ignore[no-any-return]


async def settled_rows(
    http: httpx.AsyncClient, slug: str, *, timeout_s: float = 20
) -> list[dict[str, Any]]:
    """The account's rows once none is pending (bounded)."""
    deadline = time.monotonic() + timeout_s
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = await _all_rows(http, slug)  # type: ignore[assignment]
        if all(r["status"] != "pending" for r in rows):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"rows still pending after {timeout_s} s: {rows}")


def assert_complete_rows_match_the_provider(
    rows: list[dict[str, Any]], responses: dict[str, dict[str, Any]]
) -> None:
    for row in rows:
        if row["status"] != "complete":
            continue
        truth = responses[row["provider_response_id"]]
        assert truth["status"] == "200", (row, truth)
        assert row["usage_source"] == "reported"
        assert (row["input_tokens"], row["output_tokens"]) == (
            truth["prompt_tokens"],
            truth["completion_tokens"],
        )
