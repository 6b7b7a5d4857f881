"""Rule 6: uniqueness lives in the database. 50 concurrent registrations of one slug give
exactly one 201 and 49 × 409, never a 500 and never two rows."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from switchboard.bootstrap import Container
from switchboard.db.uow import AccountScope
from switchboard.errors import Conflict
from switchboard.registry.schemas import AgentCreate
from tests.conftest import ADMIN, new_account, unique

N = 50


async def test_50_concurrent_registrations_of_one_slug_over_http(
    client: httpx.AsyncClient,
) -> None:
    slug, headers = await new_account(client)
    barrier = asyncio.Barrier(N)

    async def register(i: int) -> int:
        await barrier.wait()  # every request leaves at the same moment
        response = await client.post(
            f"/v1/accounts/{slug}/agents",
            headers=headers,
            json={"slug": "same", "display_name": f"attempt {i}"},
        )
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "AGENT_ALREADY_EXISTS"
        return response.status_code

    statuses = Counter(await asyncio.gather(*(register(i) for i in range(N))))
    assert statuses == {201: 1, 409: N - 1}
    listed = (await client.get(f"/v1/accounts/{slug}/agents", headers=headers)).json()
    assert [a["slug"] for a in listed["items"]] == ["same"]


async def test_50_concurrent_account_creations(client: httpx.AsyncClient) -> None:
    slug = unique("race")
    barrier = asyncio.Barrier(N)

    async def create() -> int:
        await barrier.wait()
        response = await client.post(
            "/v1/accounts", json={"slug": slug, "name": "x"}, headers=ADMIN
        )
        return response.status_code

    assert Counter(await asyncio.gather(*(create() for _ in range(N)))) == {201: 1, 409: N - 1}


async def test_registration_race_through_the_service(
    container: Container, account: AccountScope
) -> None:
    """Each task has its own unit of work; the UNIQUE index settles the race."""
    barrier = asyncio.Barrier(N)

    async def register() -> str:
        await barrier.wait()
        try:
            await container.agents.create(account, AgentCreate(slug="svc"), actor="tenant")
        except Conflict as exc:
            return exc.code
        return "created"

    outcomes = Counter(await asyncio.gather(*(register() for _ in range(N))))
    assert outcomes == {"created": 1, "AGENT_ALREADY_EXISTS": N - 1}
