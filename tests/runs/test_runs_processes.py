"""Runs across server processes (SQLite file and PostgreSQL): the multitask strategies hold when
a conversation's runs arrive at two processes, and a killed process's runs end ``interrupted``
once its lease has expired, with a terminal event, and leave the conversation usable."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx

from tests.concurrency.billing import FAST_LEASES_ENV, agent_account, settled_rows
from tests.conftest import ADMIN, ADMIN_KEY
from tests.live import FakeProviderProcess, ServerProcess
from tests.runs.helpers import (
    create_run,
    messages_of,
    runs_url,
    tool_calls_closed,
    wait_status,
)

N = 10


@contextlib.asynccontextmanager
async def _two_servers(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    servers = [ServerProcess(database_url, admin_key=ADMIN_KEY, env=FAST_LEASES_ENV)]
    try:
        await servers[0].ready()  # the first migrates and seeds; then the second starts
        servers.append(ServerProcess(database_url, admin_key=ADMIN_KEY, env=FAST_LEASES_ENV))
        await servers[1].ready()
        async with (
            httpx.AsyncClient(base_url=servers[0].url, timeout=60) as a,
            httpx.AsyncClient(base_url=servers[1].url, timeout=60) as b,
        ):
            yield a, b
    finally:
        for server in servers:
            server.stop()


async def _race(
    servers: tuple[httpx.AsyncClient, ...], slug: str, conversation: str, **body: Any
) -> list[httpx.Response]:
    """N runs racing on one conversation, sent to the servers in turn."""
    return await asyncio.gather(
        *(
            create_run(
                servers[i % len(servers)],
                slug,
                "bot",
                ADMIN,
                message=f"message {i}",
                conversation_id=conversation,
                **body,
            )
            for i in range(N)
        )
    )


async def _status(http: httpx.AsyncClient, slug: str, run_id: str) -> dict[str, Any]:
    response = await http.get(f"{runs_url(slug, 'bot')}/{run_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _until(
    http: httpx.AsyncClient, slug: str, run_id: str, statuses: set[str], timeout_s: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    run = await _status(http, slug, run_id)
    while run["status"] not in statuses and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        run = await _status(http, slug, run_id)
    assert run["status"] in statuses, run
    return run


async def test_enqueue_orders_a_conversation_s_runs_sent_to_two_processes(
    database_url: str, fake: FakeProviderProcess
) -> None:
    await fake.reset(latency_s=0.05)
    async with _two_servers(database_url) as (a, b):
        slug = await agent_account(a, fake)
        conversation = str(uuid.uuid4())
        responses = await _race((a, b), slug, conversation)
        assert {r.status_code for r in responses} == {200}, [r.text for r in responses][:2]
        assert {r.json()["status"] for r in responses} == {"succeeded"}
        messages = await messages_of(a, slug, ADMIN, conversation)
    assert [m["role"] for m in messages] == ["user", "assistant"] * N  # never interleaved
    for user, reply in zip(messages[::2], messages[1::2], strict=True):
        assert reply["run_id"] == user["run_id"]
    runs = {r.json()["id"]: r.json() for r in responses}
    started = sorted(runs.values(), key=lambda r: r["started_at"])
    for earlier, later in itertools.pairwise(started):
        assert earlier["finished_at"] <= later["started_at"]  # one at a time


async def test_reject_and_interrupt_hold_across_two_processes(
    database_url: str, fake: FakeProviderProcess
) -> None:
    await fake.reset(rate_hang=1.0)  # every provider call hangs: a run stays running
    async with _two_servers(database_url) as (a, b):
        slug = await agent_account(a, fake, request_timeout_s=60)
        conversation = str(uuid.uuid4())
        raced = await _race(
            (a, b), slug, conversation, multitask_strategy="reject", background=True
        )
        accepted = [r for r in raced if r.status_code == 202]
        assert len(accepted) == 1, [r.text for r in raced]
        first = accepted[0].json()["id"]
        for refused in (r for r in raced if r.status_code != 202):
            assert refused.status_code == 409
            assert refused.json()["error"]["details"]["active_run_id"] == first
        # Interrupt through the other process than the one running the first run.
        owner_is_a = raced.index(accepted[0]) % 2 == 0
        other = b if owner_is_a else a
        second = await create_run(
            other,
            slug,
            "bot",
            ADMIN,
            message="instead",
            conversation_id=conversation,
            multitask_strategy="interrupt",
            background=True,
        )
        assert second.status_code == 202, second.text
        stopped = await wait_status(a, slug, "bot", ADMIN, first)
        assert (stopped["status"], stopped["stop_reason"]) == ("cancelled", "interrupt")
        now = await _until(b, slug, second.json()["id"], {"running"})
        assert now["started_at"] >= stopped["finished_at"]
        cancelled = await a.post(f"{runs_url(slug, 'bot')}/{now['id']}/cancel", headers=ADMIN)
        assert cancelled.status_code == 200
        assert (await wait_status(b, slug, "bot", ADMIN, now["id"]))["status"] == "cancelled"
        rows = await settled_rows(a, slug)
    assert {r["run_id"] for r in rows} <= {first, now["id"]}
    assert {r["status"] for r in rows} <= {"cancelled"}


async def test_a_killed_process_s_background_runs_end_interrupted_after_restart(
    database_url: str, fake: FakeProviderProcess
) -> None:
    await fake.reset(rate_hang=1.0)
    server = ServerProcess(database_url, admin_key=ADMIN_KEY, env=FAST_LEASES_ENV)
    try:
        await server.ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            slug = await agent_account(http, fake, request_timeout_s=60)
            created = [
                await create_run(http, slug, "bot", ADMIN, message=f"m{i}", background=True)
                for i in range(5)
            ]
            assert {r.status_code for r in created} == {202}
            runs = [r.json() for r in created]
            deadline = time.monotonic() + 20
            while (await fake.stats())["requests_total"] < len(runs):
                assert time.monotonic() < deadline, "the provider calls never started"
                await asyncio.sleep(0.05)
        server.kill()
        server.stop()
        server = ServerProcess(database_url, admin_key=ADMIN_KEY, env=FAST_LEASES_ENV)
        await server.ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            for run in runs:
                final = await _until(http, slug, run["id"], {"interrupted"}, timeout_s=15)
                assert final["error"]["code"] == "RUN_OWNER_DIED", final
                events = await http.get(
                    f"{runs_url(slug, 'bot')}/{run['id']}/events", headers=ADMIN
                )
                assert "event: interrupted" in events.text
                assert events.text.count("RUN_OWNER_DIED") == 1
            rows = await settled_rows(http, slug)
            assert {(r["status"], r["run_id"]) for r in rows} == {
                ("interrupted", run["id"]) for run in runs
            }
            await fake.reset()
            again = await create_run(
                http,
                slug,
                "bot",
                ADMIN,
                message="after the crash",
                conversation_id=runs[0]["conversation_id"],
            )
            assert again.status_code == 200, again.text
            assert again.json()["status"] == "succeeded"
    finally:
        server.stop()


async def test_interrupt_racing_on_two_processes_lets_the_last_run_win(
    database_url: str, fake: FakeProviderProcess
) -> None:
    """10 runs with ``interrupt`` racing over two processes, each agent step a hanging tool
    call: the last queued run is the one left running; every other ends ``cancelled`` with its
    spend in its result, and no tool call is left without a result."""
    await fake.reset()
    async with _two_servers(database_url) as (a, b):
        slug = await agent_account(
            a,
            fake,
            tools=["hang"],
            tool_timeout_s=60,
            tool_modules=["tests.tools"],
            custom_tools={"hang": "tests.tools:hang"},
        )
        conversation = str(uuid.uuid4())
        raced = await _race(
            (a, b), slug, conversation, multitask_strategy="interrupt", background=True
        )
        assert {r.status_code for r in raced} == {202}, [r.text for r in raced]
        listed = await a.get(
            f"/v1/accounts/{slug}/conversations/{conversation}/runs", headers=ADMIN
        )
        runs = listed.json()["items"]  # newest first
        last, earlier = runs[0]["id"], [r["id"] for r in runs[1:]]
        assert len(earlier) == N - 1
        finals = [await wait_status(b, slug, "bot", ADMIN, run_id) for run_id in earlier]
        assert {(f["status"], f["stop_reason"]) for f in finals} == {("cancelled", "interrupt")}
        await _until(a, slug, last, {"running"})
        await b.post(f"{runs_url(slug, 'bot')}/{last}/cancel", headers=ADMIN)
        finals.append(await wait_status(a, slug, "bot", ADMIN, last))
        assert finals[-1]["status"] == "cancelled"
        rows = await settled_rows(a, slug)
        messages = await messages_of(a, slug, ADMIN, conversation)
    tool_calls_closed(messages)
    for final in finals:  # each run's spend is in its result, as in the ledger
        of_run = [r for r in rows if r["run_id"] == final["id"]]
        spent = [r for r in of_run if r["id"] in final["result"]["llm_request_ids"]]
        assert sum(Decimal(r["cost_usd"]) for r in spent) == Decimal(final["result"]["cost_usd"])
        assert all(Decimal(r["cost_usd"]) == 0 for r in of_run if r not in spent)
