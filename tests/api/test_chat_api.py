"""The chat API on the offline demo model: replies, memory, events, tools, errors."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx

from switchboard.settings import Settings
from tests.conftest import ADMIN, new_account, serving
from tests.live import sse_events
from tests.tools import reset_barrier


async def chat(
    client: httpx.AsyncClient, slug: str, agent: str, headers: dict[str, str], **body: object
) -> httpx.Response:
    return await client.post(f"/v1/accounts/{slug}/agents/{agent}/chat", headers=headers, json=body)


async def ledger(
    client: httpx.AsyncClient, slug: str, headers: dict[str, str], **params: object
) -> list[dict[str, object]]:
    response = await client.get(
        f"/v1/accounts/{slug}/llm-requests", headers=headers, params={"limit": 200, **params}
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def test_a_turn_with_parallel_tools_is_stored_and_billed(client: httpx.AsyncClient) -> None:
    slug, headers = await new_account(client)
    await client.post(
        f"/v1/accounts/{slug}/agents",
        headers=headers,
        json={"slug": "bot", "tools": ["calculate", "current_time"]},
    )
    response = await chat(client, slug, "bot", headers, message="what is 6*7?")
    assert response.status_code == 200, response.text
    body = response.json()
    assert "6*7 = 42" in body["reply"]
    assert len(body["llm_request_ids"]) == 2  # tool calls, then the answer
    rows = await ledger(client, slug, headers, conversation_id=body["conversation_id"])
    assert {r["id"] for r in rows} == set(body["llm_request_ids"])
    assert all(r["status"] == "complete" and r["priced"] for r in rows)
    assert body["usage"]["input_tokens"] == sum(r["input_tokens"] for r in rows) > 0
    assert body["usage"]["output_tokens"] == sum(r["output_tokens"] for r in rows) > 0
    assert Decimal(body["cost_usd"]) == sum(Decimal(r["cost_usd"]) for r in rows) > 0

    messages = (
        await client.get(
            f"/v1/accounts/{slug}/conversations/{body['conversation_id']}/messages", headers=headers
        )
    ).json()["items"]
    assert [(m["seq"], m["role"]) for m in messages] == [
        (1, "user"),
        (2, "tool_call"),
        (3, "tool_result"),
        (4, "assistant"),
    ]

    again = await chat(
        client, slug, "bot", headers, message="and 3+4", conversation_id=body["conversation_id"]
    )
    assert again.json()["conversation_id"] == body["conversation_id"]
    listed = (
        await client.get(
            f"/v1/accounts/{slug}/conversations", headers=headers, params={"agent": "bot"}
        )
    ).json()["items"]
    assert [c["id"] for c in listed] == [body["conversation_id"]]


async def test_streamed_turn_emits_deltas_tools_and_done(client: httpx.AsyncClient) -> None:
    slug, headers = await new_account(client)
    await client.post(
        f"/v1/accounts/{slug}/agents", headers=headers, json={"slug": "bot", "tools": ["calculate"]}
    )
    async with client.stream(
        "POST",
        f"/v1/accounts/{slug}/agents/bot/chat",
        headers=headers,
        json={"message": "2+2 please", "stream": True},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [e async for e in sse_events(response)]
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "tool_call"
    assert "tool_result" in kinds
    assert "delta" in kinds
    assert kinds[-1] == "done"
    done = events[-1][1]
    text = "".join(data["text"] for kind, data in events if kind == "delta")
    assert text == done["reply"]
    assert "2+2 = 4" in text


async def test_parallel_tool_calls_run_concurrently_each_with_its_own_unit_of_work(
    client: httpx.AsyncClient,
) -> None:
    """The two tools meet at a barrier before writing: if they ran one after the other, the
    first would time out waiting for the second."""
    slug, headers = await new_account(client)
    created = await client.post(
        f"/v1/accounts/{slug}/agents",
        headers=ADMIN,  # custom tools are the operator's to declare
        json={
            "slug": "pair",
            "tools": ["meet_a", "meet_b"],
            "config": {
                "tool_modules": ["tests.tools"],
                "custom_tools": {"meet_a": "tests.tools:meet_a", "meet_b": "tests.tools:meet_b"},
            },
        },
    )
    assert created.status_code == 201, created.text
    reset_barrier("pair", 2)
    response = await chat(client, slug, "pair", headers, message="hello")
    assert response.status_code == 200, response.text
    reply = response.json()["reply"]
    assert "a wrote 'hello'" in reply
    assert "b wrote 'hello'" in reply
    assert "ERROR" not in reply


async def test_failing_and_hanging_tools_do_not_break_the_turn(client: httpx.AsyncClient) -> None:
    slug, headers = await new_account(client)
    created = await client.post(
        f"/v1/accounts/{slug}/agents",
        headers=ADMIN,
        json={
            "slug": "flaky",
            "tools": ["boom", "hang", "echo"],
            "config": {
                "tool_timeout_s": 0.3,
                "tool_modules": ["tests.tools"],
                "custom_tools": {
                    "boom": "tests.tools:boom",
                    "hang": "tests.tools:hang",
                    "echo": "tests.tools:sync_echo",
                },
            },
        },
    )
    assert created.status_code == 201, created.text
    response = await chat(client, slug, "flaky", headers, message="try")
    assert response.status_code == 200, response.text
    body = response.json()
    assert "ERROR: tool 'boom' failed: RuntimeError: boom on 'try'" in body["reply"]
    assert "ERROR: tool 'hang' timed out after 0.3 s" in body["reply"]
    assert "echo: try" in body["reply"]
    rows = await ledger(client, slug, headers, conversation_id=body["conversation_id"])
    assert [r["status"] for r in rows] == ["complete", "complete"]
    messages = (
        await client.get(
            f"/v1/accounts/{slug}/conversations/{body['conversation_id']}/messages", headers=headers
        )
    ).json()["items"]
    assert [m["role"] for m in messages] == ["user", "tool_call", "tool_result", "assistant"]


async def test_history_window_and_ledgered_summary(client: httpx.AsyncClient) -> None:
    slug, headers = await new_account(client)
    await client.post(
        f"/v1/accounts/{slug}/agents",
        headers=headers,
        json={"slug": "mem", "config": {"memory": {"max_messages": 2}}},
    )
    conversation = None
    for text in ["one", "two", "three"]:
        response = await chat(
            client, slug, "mem", headers, message=text, conversation_id=conversation
        )
        conversation = response.json()["conversation_id"]
    rows = await ledger(client, slug, headers, conversation_id=conversation)
    kinds = sorted(r["kind"] for r in rows)
    assert kinds == ["chat", "chat", "chat", "summary"]
    listed = (await client.get(f"/v1/accounts/{slug}/conversations", headers=headers)).json()
    assert listed["items"][0]["summary"].startswith("Summary of 2 earlier messages")


async def test_summaries_fold_half_a_window_at_a_time(client: httpx.AsyncClient) -> None:
    """Messages that left the history window are folded into the summary only once half a
    window of them is waiting (here 3 of max_messages 6); until then they are sent word for
    word. Eight two-message turns make two summary calls (turns 6 and 8), not four."""
    slug, headers = await new_account(client)
    await client.post(
        f"/v1/accounts/{slug}/agents",
        headers=headers,
        json={"slug": "mem", "config": {"memory": {"max_messages": 6}}},
    )
    conversation = None
    summaries_after: list[int] = []
    for turn in range(1, 9):
        response = await chat(
            client, slug, "mem", headers, message=f"turn {turn}", conversation_id=conversation
        )
        assert response.status_code == 200, response.text
        conversation = response.json()["conversation_id"]
        rows = await ledger(client, slug, headers, conversation_id=conversation)
        if sum(r["kind"] == "summary" for r in rows) > len(summaries_after):
            summaries_after.append(turn)
    assert summaries_after == [6, 8]
    listed = (await client.get(f"/v1/accounts/{slug}/conversations", headers=headers)).json()
    # The second fold: the earlier summary and messages 5-8 (turns 3 and 4).
    assert listed["items"][0]["summary"].startswith("Summary of 5 earlier messages")
    assert "user: turn 4" in listed["items"][0]["summary"]


async def test_chat_errors(client: httpx.AsyncClient) -> None:
    slug, headers = await new_account(client)
    other, other_headers = await new_account(client)
    await client.post(f"/v1/accounts/{slug}/agents", headers=headers, json={"slug": "bot"})
    await client.post(f"/v1/accounts/{slug}/agents", headers=headers, json={"slug": "bot2"})
    await client.post(f"/v1/accounts/{other}/agents", headers=other_headers, json={"slug": "bot"})
    theirs = (await chat(client, other, "bot", other_headers, message="hi")).json()
    mine = (await chat(client, slug, "bot", headers, message="hi")).json()

    cases = [
        ("missing", {"message": "hi"}, 404, "AGENT_NOT_FOUND"),
        ("bot", {"message": ""}, 422, "VALIDATION_ERROR"),
        ("bot", {"message": "hi", "extra": 1}, 422, "VALIDATION_ERROR"),
        ("bot", {"message": "hi", "conversation_id": "nope"}, 422, "VALIDATION_ERROR"),
        (
            "bot",
            {"message": "hi", "conversation_id": theirs["conversation_id"]},
            404,
            "CONVERSATION_NOT_FOUND",
        ),
        (
            "bot2",
            {"message": "hi", "conversation_id": mine["conversation_id"]},
            409,
            "CONVERSATION_AGENT_MISMATCH",
        ),
    ]
    for agent, body, status, code in cases:
        response = await client.post(
            f"/v1/accounts/{slug}/agents/{agent}/chat", headers=headers, json=body
        )
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["code"] == code

    await client.patch(f"/v1/accounts/{slug}/agents/bot", headers=headers, json={"enabled": False})
    disabled = await chat(client, slug, "bot", headers, message="hi")
    assert disabled.status_code == 409
    assert disabled.json()["error"]["code"] == "AGENT_DISABLED"
    # the other account's conversation is untouched by my attempts
    msgs = (
        await client.get(
            f"/v1/accounts/{other}/conversations/{theirs['conversation_id']}/messages",
            headers=other_headers,
        )
    ).json()["items"]
    assert len(msgs) == 2
    foreign = await client.get(
        f"/v1/accounts/{slug}/conversations/{theirs['conversation_id']}/messages", headers=headers
    )
    assert foreign.status_code == 404


async def test_unknown_tools_and_broken_paths_are_rejected_at_registration(
    client: httpx.AsyncClient,
) -> None:
    slug, _ = await new_account(client)
    response = await client.post(
        f"/v1/accounts/{slug}/agents",
        headers=ADMIN,
        json={
            "slug": "bad",
            "tools": ["nope", "x"],
            "config": {
                "tool_modules": ["tests.tools"],
                "custom_tools": {"x": "tests.tools:missing_function"},
            },
        },
    )
    assert response.status_code == 422
    problems = {p["key"]: p["message"] for p in response.json()["error"]["details"]["problems"]}
    assert "unknown tool 'nope'" in problems["tools.0"]
    assert "has no function 'missing_function'" in problems["custom_tools.x"]


async def test_missing_provider_key_is_a_clear_configuration_error(
    client: httpx.AsyncClient,
) -> None:
    slug, headers = await new_account(client)
    created = await client.post(
        f"/v1/accounts/{slug}/agents",
        headers=ADMIN,
        json={
            "slug": "keyless",
            "model": "local:m",
            "config": {
                "providers": {
                    "local": {
                        "base_url": "http://127.0.0.1:9/v1",
                        "api_key_env": "TEST_UNSET_PROVIDER_KEY",
                    }
                }
            },
        },
    )
    assert created.status_code == 201, created.text
    response = await chat(client, slug, "keyless", headers, message="hi")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "PROVIDER_MISCONFIGURED"
    assert "TEST_UNSET_PROVIDER_KEY" in error["message"]


async def test_admin_can_chat_on_any_account(client: httpx.AsyncClient) -> None:
    slug, headers = await new_account(client)
    await client.post(f"/v1/accounts/{slug}/agents", headers=headers, json={"slug": "bot"})
    response = await chat(client, slug, "bot", ADMIN, message="hello")
    assert response.status_code == 200
    assert response.json()["reply"] == "You said: hello"


async def test_bodies_are_stored_only_when_asked(settings: Settings) -> None:
    from sqlalchemy import select

    from switchboard.db.uow import CrossAccount
    from switchboard.ledger.models import LlmRequest

    async with serving(settings) as (app, client):
        slug, headers = await new_account(client)
        base = f"/v1/accounts/{slug}/agents"
        await client.post(base, headers=headers, json={"slug": "quiet"})
        await client.post(
            base,
            headers=ADMIN,  # what the ledger stores is the operator's decision
            json={"slug": "loud", "config": {"ledger": {"store_bodies": True}}},
        )
        quiet = (await chat(client, slug, "quiet", headers, message="not kept")).json()
        loud = (await chat(client, slug, "loud", headers, message="keep me")).json()
        container = app.state.container

        async def bodies(ids: list[str]) -> list[tuple[object, object]]:
            unscoped = CrossAccount("test: ledger rows by id")
            async with container.uow(scope=unscoped, write=False) as u:
                rows = await u.session.execute(
                    select(LlmRequest.request_body, LlmRequest.response_body).where(
                        LlmRequest.id.in_([uuid.UUID(i) for i in ids])
                    )
                )
                return [tuple(r) for r in rows]

        assert await bodies(quiet["llm_request_ids"]) == [(None, None)]
        [(request, response)] = await bodies(loud["llm_request_ids"])
    assert "keep me" in str(request)
    assert "You said: keep me" in str(response)
