"""Runs over HTTP (in process, SQLite and PostgreSQL): background, wait, stream, cancel,
idempotency keys, the multitask strategies on one conversation, resuming a stream."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx

from tests.conftest import new_account
from tests.live import FakeProviderProcess, fake_agent_body, sse_with_ids
from tests.runs.helpers import (
    HANG_AGENT,
    add_agent,
    create_run,
    ledger_of,
    messages_of,
    runs_url,
    tool_calls_closed,
    wait_status,
)

N = 10


async def test_a_background_run_is_accepted_then_read_waited_and_listed(
    client: httpx.AsyncClient,
) -> None:
    slug, headers = await new_account(client)
    await add_agent(client, slug, {"slug": "bot", "tools": ["calculate"]})
    accepted = await create_run(client, slug, "bot", headers, message="6*7?", background=True)
    assert accepted.status_code == 202, accepted.text
    run = accepted.json()
    assert run["status"] in ("running", "succeeded")
    assert accepted.headers["location"].endswith(f"/agents/bot/runs/{run['id']}")
    done = await wait_status(client, slug, "bot", headers, run["id"])
    assert done["status"] == "succeeded", done
    assert "6*7 = 42" in done["result"]["reply"]
    rows = await ledger_of(client, slug, headers, conversation_id=run["conversation_id"])
    assert {r["id"] for r in rows} == set(done["result"]["llm_request_ids"])
    assert {r["run_id"] for r in rows} == {run["id"]}  # every ledger row names its run
    assert Decimal(done["result"]["cost_usd"]) == sum(Decimal(r["cost_usd"]) for r in rows)
    got = await client.get(f"{runs_url(slug, 'bot')}/{run['id']}", headers=headers)
    assert got.json()["status"] == "succeeded"
    listed = await client.get(
        f"/v1/accounts/{slug}/conversations/{run['conversation_id']}/runs", headers=headers
    )
    assert [r["id"] for r in listed.json()["items"]] == [run["id"]]


async def test_one_idempotency_key_makes_one_run_however_many_requests_race(
    client: httpx.AsyncClient,
) -> None:
    slug, headers = await new_account(client)
    await add_agent(client, slug, {"slug": "bot", "tools": ["calculate"]})
    key = str(uuid.uuid4())
    responses = await asyncio.gather(
        *(create_run(client, slug, "bot", headers, key=key, message="1+2?") for _ in range(50))
    )
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses][:3]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    replayed = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 49
    results = {r.json()["status"] for r in responses}
    assert results == {"succeeded"}
    (run_id,) = ids
    run = responses[0].json()
    rows = await ledger_of(client, slug, headers, conversation_id=run["conversation_id"])
    assert sorted(r["id"] for r in rows) == sorted(run["result"]["llm_request_ids"])
    all_rows = await ledger_of(client, slug, headers)
    assert {r["run_id"] for r in all_rows} == {run_id}  # one set of provider calls, no more
    other = await create_run(client, slug, "bot", headers, key=key, message="2+2?")
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert other.headers["x-should-retry"] == "false"


async def test_chat_with_an_idempotency_key_answers_a_retry_without_running_again(
    client: httpx.AsyncClient,
) -> None:
    slug, headers = await new_account(client)
    await add_agent(client, slug, {"slug": "bot"})
    url = f"/v1/accounts/{slug}/agents/bot/chat"
    retry = headers | {"Idempotency-Key": "chat-1"}
    first = await client.post(url, headers=retry, json={"message": "hello"})
    second = await client.post(url, headers=retry, json={"message": "hello"})
    assert first.status_code == second.status_code == 200
    assert second.headers["idempotent-replayed"] == "true"
    assert first.json() == second.json()
    assert len(await ledger_of(client, slug, headers)) == 1


async def test_enqueue_runs_a_conversation_s_turns_one_at_a_time_in_order(
    client: httpx.AsyncClient,
) -> None:
    slug, headers = await new_account(client)
    await add_agent(client, slug, {"slug": "bot"})
    conversation = str(uuid.uuid4())
    responses = await asyncio.gather(
        *(
            create_run(
                client, slug, "bot", headers, message=f"message {i}", conversation_id=conversation
            )
            for i in range(N)
        )
    )
    assert {r.status_code for r in responses} == {200}
    assert {r.json()["status"] for r in responses} == {"succeeded"}
    messages = await messages_of(client, slug, headers, conversation)
    roles = [m["role"] for m in messages]
    assert roles == ["user", "assistant"] * N  # strictly alternating: never interleaved
    for user, reply in zip(messages[::2], messages[1::2], strict=True):
        assert reply["content"] == f"You said: {user['content']}"
        assert reply["run_id"] == user["run_id"]


async def _race(
    client: httpx.AsyncClient,
    slug: str,
    headers: dict[str, str],
    conversation: str,
    strategy: str,
) -> list[httpx.Response]:
    """N background runs of the hanging agent racing on one conversation."""
    return await asyncio.gather(
        *(
            create_run(
                client,
                slug,
                "slow",
                headers,
                message=f"m{i}",
                conversation_id=conversation,
                multitask_strategy=strategy,
                background=True,
            )
            for i in range(N)
        )
    )


async def test_reject_refuses_a_second_run_while_one_is_active(
    client: httpx.AsyncClient,
) -> None:
    slug, headers = await new_account(client)
    await add_agent(client, slug, HANG_AGENT)
    conversation = str(uuid.uuid4())
    responses = await _race(client, slug, headers, conversation, "reject")
    accepted = [r for r in responses if r.status_code == 202]
    refused = [r for r in responses if r.status_code == 409]
    assert len(accepted) == 1, [r.text for r in responses]
    assert len(refused) == N - 1
    active = accepted[0].json()["id"]
    for response in refused:
        error = response.json()["error"]
        assert error["code"] == "CONVERSATION_BUSY"
        assert error["details"]["active_run_id"] == active
        assert response.headers["x-should-retry"] == "false"
    cancelled = await client.post(f"{runs_url(slug, 'slow')}/{active}/cancel", headers=headers)
    assert cancelled.status_code == 200
    final = await wait_status(client, slug, "slow", headers, active)
    assert final["status"] == "cancelled"
    assert final["stop_reason"] == "cancel"
    again = await client.post(f"{runs_url(slug, 'slow')}/{active}/cancel", headers=headers)
    assert again.json()["status"] == "cancelled"  # idempotent
    tool_calls_closed(await messages_of(client, slug, headers, conversation))
    rows = await ledger_of(client, slug, headers, conversation_id=conversation)
    assert rows
    assert all(r["status"] != "pending" for r in rows)


async def test_interrupt_lets_the_last_run_win_and_closes_every_open_tool_call(
    client: httpx.AsyncClient,
) -> None:
    slug, headers = await new_account(client)
    await add_agent(client, slug, HANG_AGENT)
    conversation = str(uuid.uuid4())
    responses = await _race(client, slug, headers, conversation, "interrupt")
    assert {r.status_code for r in responses} == {202}
    listed = await client.get(
        f"/v1/accounts/{slug}/conversations/{conversation}/runs", headers=headers
    )
    runs = listed.json()["items"]  # newest first
    last, earlier = runs[0]["id"], [r["id"] for r in runs[1:]]
    for run_id in earlier:
        final = await wait_status(client, slug, "slow", headers, run_id)
        assert final["status"] == "cancelled", final
        assert final["stop_reason"] == "interrupt"
    current = (await client.get(f"{runs_url(slug, 'slow')}/{last}", headers=headers)).json()
    assert current["status"] in ("pending", "running")
    await client.post(f"{runs_url(slug, 'slow')}/{last}/cancel", headers=headers)
    assert (await wait_status(client, slug, "slow", headers, last))["status"] == "cancelled"
    messages = await messages_of(client, slug, headers, conversation)
    tool_calls_closed(messages)
    rows = await ledger_of(client, slug, headers, conversation_id=conversation)
    assert all(r["status"] != "pending" for r in rows)
    spent = {r["run_id"] for r in rows}
    results = [await wait_status(client, slug, "slow", headers, r) for r in [last, *earlier]]
    for result in results:  # each cancelled run's spend is in its result, as in the ledger
        ids = set(result["result"]["llm_request_ids"])
        of_run = [r for r in rows if r["run_id"] == result["id"]]
        assert ids <= {r["id"] for r in of_run}
        # A call stopped while its pending row committed never left: cancelled, nothing spent.
        unsent = [r for r in of_run if r["id"] not in ids]
        assert all(
            (r["status"] == "cancelled" and r["cost_usd"] == "0E-9") or Decimal(r["cost_usd"]) == 0
            for r in unsent
        )
        assert Decimal(result["result"]["cost_usd"]) == sum(Decimal(r["cost_usd"]) for r in of_run)
    assert spent <= {r["id"] for r in results}


async def test_rollback_leaves_the_interrupted_run_out_of_later_history(
    client: httpx.AsyncClient,
) -> None:
    slug, headers = await new_account(client)
    await add_agent(client, slug, HANG_AGENT | {"slug": "slow"})
    conversation = str(uuid.uuid4())
    first = await create_run(
        client,
        slug,
        "slow",
        headers,
        message="first",
        conversation_id=conversation,
        background=True,
    )
    first_id = first.json()["id"]
    assert first.json()["status"] == "running"  # started in its creating unit of work
    second = await create_run(
        client,
        slug,
        "slow",
        headers,
        message="second",
        conversation_id=conversation,
        multitask_strategy="rollback",
        background=True,
    )
    assert second.status_code == 202
    rolled = await wait_status(client, slug, "slow", headers, first_id)
    assert rolled["status"] == "cancelled"
    assert rolled["stop_reason"] == "rollback"
    await client.post(f"{runs_url(slug, 'slow')}/{second.json()['id']}/cancel", headers=headers)
    await wait_status(client, slug, "slow", headers, second.json()["id"])
    messages = await messages_of(client, slug, headers, conversation)
    of_first = [m for m in messages if m["run_id"] == first_id]
    assert of_first
    assert all(m["excluded"] for m in of_first)
    assert not any(m["excluded"] for m in messages if m["run_id"] != first_id)
    tool_calls_closed(messages)


async def test_a_stream_resumed_after_any_event_gives_the_rest_exactly_once(
    client: httpx.AsyncClient,
) -> None:
    slug, headers = await new_account(client)
    await add_agent(client, slug, {"slug": "bot", "tools": ["calculate", "current_time"]})
    full: list[tuple[int | None, str, object]] = []
    async with client.stream(
        "POST", runs_url(slug, "bot"), headers=headers, json={"message": "6*7?", "stream": True}
    ) as response:
        assert response.status_code == 200
        full = [event async for event in sse_with_ids(response)]
    kinds = [kind for _, kind, _ in full]
    assert kinds[0] == "created"
    assert kinds[-1] == "done"
    assert {"tool_call", "tool_result", "provider_call", "delta"} <= set(kinds)
    assert [seq for seq, _, _ in full] == list(range(1, len(full) + 1))
    run_id = full[0][2]["run_id"]  # type: ignore[index]
    url = f"{runs_url(slug, 'bot')}/{run_id}/events"
    for index in range(len(full)):
        async with client.stream(
            "GET", url, headers=headers | {"Last-Event-ID": str(index)}
        ) as response:
            rest = [event async for event in sse_with_ids(response)]
        assert rest == full[index:]
    by_query = await client.get(url, headers=headers, params={"after": len(full) - 1})
    assert by_query.text.count("event: done") == 1


async def test_run_errors(client: httpx.AsyncClient) -> None:
    slug, headers = await new_account(client)
    other, other_headers = await new_account(client)
    await add_agent(client, slug, {"slug": "bot"})
    await add_agent(client, slug, {"slug": "bot2"})
    await add_agent(client, other, {"slug": "bot"})
    theirs = (await create_run(client, other, "bot", other_headers, message="hi")).json()
    mine = (await create_run(client, slug, "bot", headers, message="hi")).json()
    base = runs_url(slug, "bot")
    cases = [
        ("GET", f"{base}/{theirs['id']}", 404, "RUN_NOT_FOUND"),
        ("GET", f"{base}/{uuid.uuid4()}", 404, "RUN_NOT_FOUND"),
        ("POST", f"{base}/{theirs['id']}/cancel", 404, "RUN_NOT_FOUND"),
        ("GET", f"{base}/{theirs['id']}/events", 404, "RUN_NOT_FOUND"),
        ("GET", f"{runs_url(slug, 'bot2')}/{mine['id']}", 404, "RUN_NOT_FOUND"),
        ("GET", f"{base}/not-a-uuid", 422, "VALIDATION_ERROR"),
        (
            "GET",
            f"/v1/accounts/{slug}/conversations/{theirs['conversation_id']}/runs",
            404,
            "CONVERSATION_NOT_FOUND",
        ),
    ]
    for method, url, status, code in cases:
        response = await client.request(method, url, headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), url
    bodies = [
        ({"message": "hi", "multitask_strategy": "later"}, 422),
        ({"message": "hi", "background": True, "on_disconnect": "cancel"}, 422),
        ({"message": "hi", "background": True, "stream": True}, 422),
        ({"message": "hi", "background": "maybe"}, 422),
    ]
    for body, status in bodies:
        response = await client.post(base, headers=headers, json=body)
        assert response.status_code == status, (body, response.text)
    bad_key = await client.post(
        base, headers=headers | {"Idempotency-Key": "x" * 300}, json={"message": "hi"}
    )
    assert bad_key.status_code == 422
    bad_event_id = await client.get(
        f"{base}/{mine['id']}/events", headers=headers | {"Last-Event-ID": "abc"}
    )
    assert bad_event_id.status_code == 422


async def test_a_retried_provider_call_shows_as_retrying_events_each_its_own_row(
    client: httpx.AsyncClient, fake: FakeProviderProcess
) -> None:
    await fake.reset(rate_429=1.0, retry_after_s=0.01)
    slug, headers = await new_account(client)
    retry = {"attempts": 3, "base_s": 0.01, "cap_s": 0.02}
    await add_agent(client, slug, fake_agent_body("bot", fake.url, retry=retry))
    async with client.stream(
        "POST", runs_url(slug, "bot"), headers=headers, json={"message": "hi", "stream": True}
    ) as response:
        events = [(kind, data) async for _, kind, data in sse_with_ids(response)]
    retrying = [data for kind, data in events if kind == "retrying"]
    assert [r["attempt"] for r in retrying] == [1, 2]
    assert {r["code"] for r in retrying} == {"PROVIDER_RATE_LIMITED"}
    calls = [data for kind, data in events if kind == "provider_call"]
    assert len(calls) == 3  # every attempt is its own ledger row, each an event
    assert events[-1][0] == "error"
