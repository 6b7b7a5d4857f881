"""Shared steps of the run tests: an account with agents, runs created and read over HTTP."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ADMIN

HANG_AGENT: dict[str, Any] = {
    "slug": "slow",
    "tools": ["hang"],
    "config": {
        "tool_timeout_s": 60,
        "tool_modules": ["tests.tools"],
        "custom_tools": {"hang": "tests.tools:hang"},
    },
}


async def add_agent(client: httpx.AsyncClient, slug: str, body: dict[str, Any]) -> None:
    response = await client.post(f"/v1/accounts/{slug}/agents", headers=ADMIN, json=body)
    assert response.status_code == 201, response.text


def runs_url(slug: str, agent: str) -> str:
    return f"/v1/accounts/{slug}/agents/{agent}/runs"


async def create_run(
    client: httpx.AsyncClient,
    slug: str,
    agent: str,
    headers: dict[str, str],
    *,
    key: str | None = None,
    **body: Any,
) -> httpx.Response:
    extra = {"Idempotency-Key": key} if key else {}
    return await client.post(runs_url(slug, agent), headers=headers | extra, json=body)


async def messages_of(
    client: httpx.AsyncClient, slug: str, headers: dict[str, str], conversation: str
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/accounts/{slug}/conversations/{conversation}/messages",
        headers=headers,
        params={"limit": 200},
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def ledger_of(
    client: httpx.AsyncClient, slug: str, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/accounts/{slug}/llm-requests", headers=headers, params={"limit": 200, **params}
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def tool_calls_closed(messages: list[dict[str, Any]]) -> None:
    """Every tool call in the stored history has its result (none left dangling)."""
    called: set[str] = set()
    answered: set[str] = set()
    for message in messages:
        for part in message["data"].get("parts", []):
            if part.get("part_kind") == "tool-call":
                called.add(part["tool_call_id"])
            elif part.get("part_kind") in ("tool-return", "retry-prompt"):
                answered.add(part["tool_call_id"])
    assert called <= answered, f"tool calls without a result: {called - answered}"


async def wait_status(
    client: httpx.AsyncClient, slug: str, agent: str, headers: dict[str, str], run_id: str
) -> dict[str, Any]:
    response = await client.get(
        f"{runs_url(slug, agent)}/{run_id}/wait", headers=headers, params={"timeout_s": 30}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]
