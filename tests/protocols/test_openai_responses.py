"""Issue 15, the Responses API through the official ``openai`` SDK over real HTTP: a response is
a run (``resp_`` + its id), server-run tools are ``mcp_call`` items, ``previous_response_id``
continues or forks, background responses are followed and cancelled, and a stream resumes
after ``starting_after`` with exactly the missing events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from switchboard.settings import Settings
from tests.conftest import new_account
from tests.live import live_app
from tests.runs.helpers import HANG_AGENT, add_agent, ledger_of, messages_of


@pytest.fixture
async def site(
    settings: Settings,
) -> AsyncIterator[tuple[AsyncOpenAI, httpx.AsyncClient, str, dict[str, str]]]:
    async with live_app(settings) as (base, _), httpx.AsyncClient(base_url=base) as http:
        slug, headers = await new_account(http)
        await add_agent(http, slug, {"slug": "bot", "tools": ["calculate", "current_time"]})
        key = headers["Authorization"].removeprefix("Bearer ")
        async with AsyncOpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0) as sdk:
            yield sdk, http, slug, headers


Site = tuple[AsyncOpenAI, httpx.AsyncClient, str, dict[str, str]]


async def test_a_response_is_a_billed_run_with_mcp_call_items(site: Site) -> None:
    sdk, http, slug, headers = site
    response = await sdk.responses.create(model="bot", input="what is 6*7?")
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    kinds = [item.type for item in response.output]
    assert kinds == ["mcp_call", "mcp_call", "message"]
    calls = [item for item in response.output if item.type == "mcp_call"]
    assert {c.name for c in calls} == {"calculate", "current_time"}
    assert all(c.output for c in calls)
    assert "6*7 = 42" in response.output_text
    extra = response.model_extra["switchboard"]  # type: ignore[index]
    rows = await ledger_of(http, slug, headers, run_id=extra["run_id"])
    assert response.usage is not None
    assert response.usage.input_tokens == sum(r["input_tokens"] for r in rows) > 0
    assert response.usage.output_tokens == sum(r["output_tokens"] for r in rows) > 0
    assert Decimal(extra["cost_usd"]) == sum(Decimal(r["cost_usd"]) for r in rows)
    again = await sdk.responses.retrieve(response.id)
    assert again.output_text == response.output_text
    assert [i.type for i in again.output] == kinds


async def test_previous_response_continues_and_an_older_one_forks(site: Site) -> None:
    sdk = site[0]
    first = await sdk.responses.create(model="bot", input="what is 2+3?")
    second = await sdk.responses.create(
        model="bot", input="what is 4*4?", previous_response_id=first.id
    )
    conversation = first.model_extra["switchboard"]["conversation_id"]  # type: ignore[index]
    assert second.model_extra["switchboard"]["conversation_id"] == conversation  # type: ignore[index]
    assert second.previous_response_id == first.id
    # Branching from the first again: the second turn is not in the branch.
    branch = await sdk.responses.create(
        model="bot", input="what is 9-1?", previous_response_id=first.id
    )
    extra = branch.model_extra["switchboard"]  # type: ignore[index]
    assert extra["conversation_id"] != conversation
    assert extra["forked_from"] == conversation
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.create(model="bot", input="x", previous_response_id="resp_" + "0" * 32)


async def test_a_stream_resumes_after_starting_after(site: Site) -> None:
    sdk = site[0]
    stream = await sdk.responses.create(model="bot", input="what is 6*7?", stream=True)
    events = [event async for event in stream]
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(events)))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "6*7 = 42" in text
    response_id = events[-1].response.id
    middle = len(events) // 2
    resumed = await sdk.responses.retrieve(response_id, stream=True, starting_after=middle)
    tail = [event async for event in resumed]
    assert [e.sequence_number for e in tail] == numbers[middle + 1 :]
    assert [e.type for e in tail] == [e.type for e in events[middle + 1 :]]


async def test_a_background_response_is_followed_and_cancelled(site: Site) -> None:
    sdk, http, slug, _ = site
    await add_agent(http, slug, HANG_AGENT)
    started = await sdk.responses.create(model="slow", input="wait", background=True)
    assert started.status in ("queued", "in_progress")
    assert started.background is True
    cancelled = await sdk.responses.cancel(started.id)
    assert cancelled.id == started.id
    followed = await sdk.responses.retrieve(started.id, stream=True, starting_after=-1)
    last = [event async for event in followed][-1]
    assert last.type == "response.failed"
    final = await sdk.responses.retrieve(started.id)
    assert final.status == "cancelled"


async def test_unsupported_requests_are_refused_by_name(site: Site) -> None:
    sdk = site[0]
    cases: list[dict[str, Any]] = [
        {"store": False},
        {"tools": [{"type": "function", "name": "f", "parameters": {}}]},
        {"temperature": 0.5},
        {"input": [{"role": "assistant", "content": "x"}]},
    ]
    for extra in cases:
        call: dict[str, Any] = {"model": "bot", "input": "hi"} | extra
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.responses.create(**call)
        assert caught.value.code == "unsupported_parameter", extra


async def test_another_accounts_ids_are_unknown_and_nothing_is_written(site: Site) -> None:
    """The OpenAI routes take the account from the key: another account's response or
    conversation id is 404 there, and neither account gains a run, a message or a ledger row."""
    sdk, http, slug, headers = site
    theirs = await sdk.responses.create(model="bot", input="what is 2+3?")
    conversation = theirs.model_extra["switchboard"]["conversation_id"]  # type: ignore[index]
    before = await messages_of(http, slug, headers, conversation)
    rows = await ledger_of(http, slug, headers)
    other, other_headers = await new_account(http)
    await add_agent(http, other, {"slug": "bot"})
    key = other_headers["Authorization"].removeprefix("Bearer ")
    async with AsyncOpenAI(
        base_url=f"{str(http.base_url).rstrip('/')}/v1", api_key=key, max_retries=0
    ) as mine:
        with pytest.raises(openai.NotFoundError):
            await mine.responses.retrieve(theirs.id)
        with pytest.raises(openai.NotFoundError):
            await mine.responses.cancel(theirs.id)
        with pytest.raises(openai.NotFoundError):
            await mine.responses.create(model="bot", input="x", previous_response_id=theirs.id)
        with pytest.raises(openai.NotFoundError) as chat:
            await mine.chat.completions.create(
                model="bot",
                messages=[{"role": "user", "content": "x"}],
                metadata={"conversation_id": conversation},
            )
        assert chat.value.code == "conversation_not_found"
    assert await ledger_of(http, other, other_headers) == []
    listed = await http.get(f"/v1/accounts/{other}/conversations", headers=other_headers)
    assert listed.json()["items"] == []
    assert await messages_of(http, slug, headers, conversation) == before
    assert await ledger_of(http, slug, headers) == rows
    assert (await sdk.responses.retrieve(theirs.id)).status == "completed"
