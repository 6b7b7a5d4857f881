"""Issue 15, Chat Completions: the official ``openai`` SDK (async, sync, streaming) and Pydantic
AI's OpenAI model against the server over real HTTP. A request is a run: its usage equals its
ledger rows, retries with an Idempotency-Key never run it twice, and its errors are OpenAI's."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from switchboard.settings import Settings
from tests.conftest import ADMIN, ADMIN_KEY, new_account
from tests.live import FakeProviderProcess, fake_agent_body, live_app
from tests.runs.helpers import add_agent, ledger_of, messages_of

TOOLS = ["calculate", "current_time"]


@dataclass
class Site:
    base: str
    http: httpx.AsyncClient
    slug: str
    headers: dict[str, str]
    key: str
    clients: list[AsyncOpenAI]

    def sdk(self, key: str | None = None, **options: Any) -> AsyncOpenAI:
        """An SDK client (closed with the site)."""
        client = AsyncOpenAI(base_url=f"{self.base}/v1", api_key=key or self.key, **options)
        self.clients.append(client)
        return client

    async def ledger(self, **params: Any) -> list[dict[str, Any]]:
        return await ledger_of(self.http, self.slug, self.headers, **params)

    async def messages(self, conversation: str) -> list[dict[str, Any]]:
        return await messages_of(self.http, self.slug, self.headers, conversation)


@pytest.fixture
async def site(settings: Settings) -> AsyncIterator[Site]:
    async with live_app(settings) as (base, _), httpx.AsyncClient(base_url=base) as http:
        slug, headers = await new_account(http)
        await add_agent(http, slug, {"slug": "bot", "tools": TOOLS, "description": "helper"})
        key = headers["Authorization"].removeprefix("Bearer ")
        built = Site(base, http, slug, headers, key, [])
        try:
            yield built
        finally:
            for sdk in built.clients:
                await sdk.close()


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


async def _matches_ledger(site: Site, answer: Any) -> list[dict[str, Any]]:
    """The answer's usage and cost are its run's ledger rows, to the token and the nano-dollar."""
    extra = answer.model_extra["switchboard"]
    rows = await site.ledger(run_id=extra["run_id"])
    assert {r["id"] for r in rows} == set(extra["llm_request_ids"])
    assert answer.usage.prompt_tokens == sum(r["input_tokens"] for r in rows) > 0
    assert answer.usage.completion_tokens == sum(r["output_tokens"] for r in rows) > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    assert answer.usage.prompt_tokens_details.cached_tokens == sum(r["cached_tokens"] for r in rows)
    assert Decimal(extra["cost_usd"]) == sum(Decimal(r["cost_usd"]) for r in rows) > 0
    return rows


async def test_models_are_the_agents_the_key_may_call(site: Site) -> None:
    other, _ = await new_account(site.http)
    await add_agent(site.http, other, {"slug": "secret"})
    listed = await site.sdk().models.list()
    assert [m.id for m in listed.data] == ["bot"]
    assert all(m.object == "model" for m in listed.data)
    admin = site.sdk(ADMIN_KEY)
    ids = {m.id for m in (await admin.models.list()).data}
    assert {f"{site.slug}/bot", f"{other}/secret"} <= ids
    # Another account's agent is an unknown model, named or qualified.
    for model in ("secret", f"{other}/secret"):
        with pytest.raises(openai.NotFoundError) as caught:
            await site.sdk().chat.completions.create(model=model, messages=[_user("hi")])
        assert caught.value.code == "model_not_found"
    # The admin key names the account; unqualified is unknown.
    with pytest.raises(openai.NotFoundError):
        await admin.chat.completions.create(model="bot", messages=[_user("hi")])
    answer = await admin.chat.completions.create(
        model=f"{site.slug}/bot", messages=[_user("what is 2+3?")]
    )
    assert "2+3 = 5" in (answer.choices[0].message.content or "")


async def test_a_tool_using_agent_answers_with_the_usage_of_every_call(site: Site) -> None:
    answer = await site.sdk().chat.completions.create(model="bot", messages=[_user("what is 6*7?")])
    assert answer.object == "chat.completion"
    assert answer.id.startswith("chatcmpl-")
    choice = answer.choices[0]
    assert choice.finish_reason == "stop"
    assert "6*7 = 42" in (choice.message.content or "")
    assert not choice.message.tool_calls  # the server ran them; the client must not
    assert "<details" not in (choice.message.content or "")  # tool_calls: hidden (default)
    rows = await _matches_ledger(site, answer)
    assert len(rows) == 2  # the tool calls, then the answer


async def test_a_stream_has_one_finish_reason_and_the_usage_of_the_turn(site: Site) -> None:
    stream = await site.sdk().chat.completions.create(
        model="bot",
        messages=[_user("what is 6*7?")],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert finishes == ["stop"]
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert "6*7 = 42" in text
    assert chunks[0].choices[0].delta.role == "assistant"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    await _matches_ledger(site, last)
    assert all(c.usage is None for c in chunks[:-1])


async def test_the_sync_sdk_works_too(site: Site) -> None:
    def call() -> str:
        with OpenAI(base_url=f"{site.base}/v1", api_key=site.key) as client:
            answer = client.chat.completions.create(model="bot", messages=[_user("2+2?")])
            return answer.choices[0].message.content or ""

    assert "2+2 = 4" in await asyncio.to_thread(call)


@pytest.mark.parametrize("mode", ["details", "reasoning"])
async def test_tool_calls_are_shown_as_the_agent_says(site: Site, mode: str) -> None:
    await add_agent(
        site.http,
        site.slug,
        {"slug": "shown", "tools": TOOLS, "config": {"openai": {"tool_calls": mode}}},
    )
    sdk = site.sdk()
    answer = await sdk.chat.completions.create(model="shown", messages=[_user("what is 6*7?")])
    message = answer.choices[0].message
    assert not message.tool_calls
    stream = await sdk.chat.completions.create(
        model="shown", messages=[_user("what is 6*7?")], stream=True
    )
    chunks = [c async for c in stream]
    streamed = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    reasoning = "".join(
        (ch.delta.model_extra or {}).get("reasoning_content") or ""
        for c in chunks
        for ch in c.choices
    )
    if mode == "details":
        assert message.content is not None
        assert message.content.count('<details type="tool_calls"') == 2
        assert 'name="calculate"' in message.content
        assert streamed.count('<details type="tool_calls"') == 2
        # Sent back in the history, the blocks are stripped: the stored reply matches, no fork.
        conversation = answer.model_extra["switchboard"]["conversation_id"]
        follow = await sdk.chat.completions.with_raw_response.create(
            model="shown",
            messages=[_user("what is 6*7?"), _assistant(message.content), _user("and 2+2?")],
            metadata={"conversation_id": conversation},
        )
        assert follow.headers.get("X-Switchboard-Forked-From") is None
        assert follow.headers["X-Switchboard-Conversation-Id"] == conversation
    else:
        shown = (message.model_extra or {}).get("reasoning_content") or ""
        assert "Calling calculate" in shown
        assert "calculate returned" in shown
        assert "<details" not in (message.content or "")
        assert "Calling calculate" in reasoning


async def test_stateless_requests_store_and_bill_the_whole_history(site: Site) -> None:
    history = [
        {"role": "system", "content": "ignored: the agent's prompt is its own"},
        _user("my name is Ada"),
        _assistant("Hello Ada"),
        _user("what is 1+1?"),
    ]
    sdk = site.sdk()
    first = await sdk.chat.completions.create(model="bot", messages=history)  # type: ignore[arg-type]
    second = await sdk.chat.completions.create(model="bot", messages=history)  # type: ignore[arg-type]
    one = first.model_extra["switchboard"]["conversation_id"]
    two = second.model_extra["switchboard"]["conversation_id"]
    assert one != two  # stateless: a conversation per request
    stored = await site.messages(one)
    assert [(m["role"], m["content"]) for m in stored[:3]] == [
        ("user", "my name is Ada"),
        ("assistant", "Hello Ada"),
        ("user", "what is 1+1?"),
    ]
    assert stored[-1]["role"] == "assistant"
    await _matches_ledger(site, first)


async def test_stateful_follow_ups_append_and_an_edited_history_forks(site: Site) -> None:
    sdk = site.sdk()
    conversation = str(uuid.uuid4())
    first = await sdk.chat.completions.create(
        model="bot",
        messages=[_user("what is 2+3?")],
        metadata={"conversation_id": conversation},
    )
    reply = first.choices[0].message.content or ""
    assert first.model_extra["switchboard"]["conversation_id"] == conversation
    # Same prefix: only the new message is appended, in the same conversation.
    follow = await sdk.chat.completions.with_raw_response.create(
        model="bot",
        messages=[_user("what is 2+3?"), _assistant(reply), _user("what is 4*4?")],
        extra_headers={"X-Switchboard-Conversation-Id": conversation},
    )
    assert follow.headers["X-Switchboard-Conversation-Id"] == conversation
    assert "X-Switchboard-Forked-From" not in follow.headers
    stored = await site.messages(conversation)
    spoken = [(m["role"], m["content"]) for m in stored if m["role"] in ("user", "assistant")]
    assert spoken[:3] == [("user", "what is 2+3?"), ("assistant", reply), ("user", "what is 4*4?")]
    assert len(spoken) == 4
    assert sum(m["role"] == "user" for m in stored) == 2  # never the whole history again

    # An edited reply: a new conversation forked at the common prefix; the original untouched.
    edited = await sdk.chat.completions.with_raw_response.create(
        model="bot",
        messages=[_user("what is 2+3?"), _assistant("it is five"), _user("what is 9-1?")],
        metadata={"conversation_id": conversation},
    )
    fork = edited.headers["X-Switchboard-Conversation-Id"]
    assert fork != conversation
    assert edited.headers["X-Switchboard-Forked-From"] == conversation
    parsed = edited.parse()
    assert parsed.model_extra["switchboard"]["forked_from"] == conversation
    forked = await site.messages(fork)
    forked_spoken = [
        (m["role"], m["content"]) for m in forked if m["role"] in ("user", "assistant")
    ]
    assert forked_spoken[:3] == [
        ("user", "what is 2+3?"),
        ("assistant", "it is five"),
        ("user", "what is 9-1?"),
    ]
    # The common prefix was copied with its tool calls (the stored turn, not the client's text).
    assert [m["role"] for m in forked[:4]] == [m["role"] for m in stored[:4]][:1] + [
        m["role"] for m in forked[1:4]
    ]
    assert len(await site.messages(conversation)) == len(stored)


async def test_errors_are_openai_shaped(site: Site) -> None:
    sdk = site.sdk(max_retries=0)
    cases: list[tuple[dict[str, Any], type[openai.APIStatusError], str, str | None]] = [
        ({"n": 2}, openai.BadRequestError, "unsupported_parameter", "n"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
            openai.BadRequestError,
            "unsupported_parameter",
            "tools",
        ),
        ({"temperature": 0.2}, openai.BadRequestError, "unsupported_parameter", "temperature"),
        ({"extra_body": {"bogus": 1}}, openai.BadRequestError, "validation_error", "bogus"),
        ({"model": "nope"}, openai.NotFoundError, "model_not_found", "model"),
        (
            {"messages": [_user("x"), _assistant("y")]},
            openai.BadRequestError,
            "unsupported_parameter",
            "messages[1].role",
        ),
        (
            {"messages": [{"role": "tool", "content": "r", "tool_call_id": "1"}, _user("x")]},
            openai.BadRequestError,
            "unsupported_parameter",
            "messages[0]",
        ),
    ]
    for override, error, code, param in cases:
        call: dict[str, Any] = {"model": "bot", "messages": [_user("hi")]} | override
        with pytest.raises(error) as caught:
            await sdk.chat.completions.create(**call)
        body = caught.value.body
        assert isinstance(body, dict), override
        assert set(body) == {"message", "type", "param", "code"}, body
        assert (caught.value.code, body["param"]) == (code, param), override
        assert caught.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(openai.AuthenticationError) as unauthenticated:
        await site.sdk("sk-wrong").models.list()
    assert unauthenticated.value.code == "invalid_api_key"
    assert not (await site.ledger())  # nothing refused was billed


async def test_allowed_overrides_reach_the_run(site: Site) -> None:
    await add_agent(
        site.http,
        site.slug,
        {"slug": "tunable", "config": {"openai": {"overrides": ["temperature", "max_tokens"]}}},
    )
    answer = await site.sdk().chat.completions.create(
        model="tunable", messages=[_user("2+2?")], temperature=0.3, max_completion_tokens=50
    )
    assert answer.choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError) as caught:
        await site.sdk().chat.completions.create(
            model="tunable", messages=[_user("2+2?")], top_p=0.5
        )
    assert caught.value.body["param"] == "top_p"  # type: ignore[index]


async def test_budget_and_busy_refusals(
    settings: Settings, fake_provider: FakeProviderProcess
) -> None:
    await fake_provider.reset(latency_s=0.5)
    async with live_app(settings) as (base, _), httpx.AsyncClient(base_url=base) as http:
        slug, headers = await new_account(http)
        await add_agent(http, slug, fake_agent_body("paid", fake_provider.url))
        key = headers["Authorization"].removeprefix("Bearer ")
        sdk = AsyncOpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
        retrying = AsyncOpenAI(base_url=f"{base}/v1", api_key=key, max_retries=2)
        async with sdk, retrying:
            await _busy_then_broke(http, slug, headers, sdk, retrying)


async def _busy_then_broke(
    http: httpx.AsyncClient,
    slug: str,
    headers: dict[str, str],
    sdk: AsyncOpenAI,
    retrying: AsyncOpenAI,
) -> None:
    conversation = str(uuid.uuid4())
    # A stream's headers come once its run exists, running (a new conversation's run starts at
    # once); the provider takes 0.5 s to answer, so it is still running below.
    first = await sdk.chat.completions.create(
        model="paid",
        messages=[_user("one")],
        metadata={"conversation_id": conversation},
        stream=True,
    )
    with pytest.raises(openai.ConflictError) as busy:
        await sdk.chat.completions.create(
            model="paid",
            messages=[_user("two")],
            metadata={"conversation_id": conversation, "multitask_strategy": "reject"},
        )
    assert busy.value.code == "conversation_busy"
    assert busy.value.response.headers["x-should-retry"] == "false"
    assert "one" in "".join([ch.delta.content or "" async for c in first for ch in c.choices])
    put = await http.put(
        f"/v1/accounts/{slug}/budget",
        headers=ADMIN,
        json={"limit_usd": "0.000000001", "period": "day"},
    )
    assert put.status_code == 200, put.text
    before = len(await ledger_of(http, slug, headers))
    with pytest.raises(openai.RateLimitError) as refused:
        await retrying.chat.completions.create(model="paid", messages=[_user("three")])
    assert refused.value.code == "budget_exceeded"
    assert refused.value.type == "insufficient_quota"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert len(await ledger_of(http, slug, headers)) == before  # refused before any call


async def test_sdk_retries_with_an_idempotency_key_never_run_twice(
    settings: Settings, fake_provider: FakeProviderProcess
) -> None:
    await fake_provider.reset(latency_s=1.0)
    async with live_app(settings) as (base, _), httpx.AsyncClient(base_url=base) as http:
        slug, headers = await new_account(http)
        await add_agent(http, slug, fake_agent_body("slow", fake_provider.url))
        key = headers["Authorization"].removeprefix("Bearer ")
        # Each attempt gives up after 0.4 s; the SDK retries with the same key until the run,
        # which went on without its first client, has answered.
        async with AsyncOpenAI(
            base_url=f"{base}/v1", api_key=key, max_retries=5, timeout=0.4
        ) as sdk:
            answer = await sdk.chat.completions.create(
                model="slow",
                messages=[_user("once")],
                extra_headers={"Idempotency-Key": f"retry-{uuid.uuid4()}"},
            )
        run_id = answer.model_extra["switchboard"]["run_id"]  # type: ignore[index]
        rows = await ledger_of(http, slug, headers)
        assert [r["run_id"] for r in rows] == [run_id]  # one run, one provider call
        assert (await fake_provider.stats())["requests_total"] == 1


async def test_pydantic_ai_can_use_an_agent_as_its_model(site: Site) -> None:
    model = OpenAIChatModel("bot", provider=OpenAIProvider(openai_client=site.sdk()))
    caller: Agent[None, str] = Agent(model)
    result = await caller.run("what is 6*7?")
    assert "6*7 = 42" in result.output
    rows = await site.ledger()
    usage = result.usage
    assert usage.input_tokens == sum(r["input_tokens"] for r in rows)
    assert usage.output_tokens == sum(r["output_tokens"] for r in rows)
