"""Discussions take the one admission path: limits hold across participants, failures are
reported per participant, quorum and deadline end rounds early, every call is in the ledger."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx

from switchboard.settings import Settings
from tests.concurrency.test_chat_load import _all_rows
from tests.concurrency.test_traffic import _agent
from tests.conftest import ADMIN
from tests.live import FakeProviderProcess, live_server


async def test_ten_participants_against_a_limit_of_five(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    await fake.reset(latency_s=0.1)
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=60) as http:
        slug = await _agent(http, fake, limits={"max_concurrency": 5})
        response = await http.post(
            f"/v1/accounts/{slug}/discussions",
            headers=ADMIN,
            json={
                "prompt": "Which is larger, 7*8 or 50?",
                "participants": ["bot"] * 10,
                "rounds": 2,
                "synthesizer": "bot",
            },
        )
        rows = await _all_rows(http, slug)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [len(r) for r in body["rounds"]] == [10, 10]
    assert all(a["answer"] and a["error"] is None for r in body["rounds"] for a in r)
    assert "Answers so far" in str(body["rounds"][1][0]["answer"])  # round 2 saw round 1
    assert body["synthesis"]["answer"]
    stats = await fake.stats()
    assert stats["in_flight_max"] <= 5
    assert len(body["llm_request_ids"]) == len(rows) == stats["requests_total"] == 21
    assert {r["kind"] for r in rows} == {"discussion"}
    assert Decimal(body["cost_usd"]) == sum(Decimal(str(r["cost_usd"])) for r in rows)


async def test_a_failing_participant_does_not_fail_the_discussion(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=60) as http:
        slug = await _agent(http, fake)
        response = await http.post(
            f"/v1/accounts/{slug}/discussions",
            headers=ADMIN,
            json={
                "prompt": "hello",
                # a provider the server knows, but whose SDK or key is missing here
                "participants": ["demo", "groq:llama-3.3-70b-versatile", "bot"],
            },
        )
        unknown = await http.post(
            f"/v1/accounts/{slug}/discussions",
            headers=ADMIN,
            json={"prompt": "hello", "participants": ["demo", "nope:model"]},
        )
    assert response.status_code == 200, response.text
    [answers] = response.json()["rounds"]
    by_name = {a["participant"]: a for a in answers}
    assert by_name["demo"]["answer"] == "You said: hello"
    assert by_name["bot"]["answer"].startswith("Fake answer to: hello")
    assert by_name["groq:llama-3.3-70b-versatile"]["answer"] is None
    assert by_name["groq:llama-3.3-70b-versatile"]["error"]["code"] == "PROVIDER_MISCONFIGURED"
    # an unknown provider is the request's own error, found before anything is called
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["error"]["code"] == "INVALID_CONFIG"


async def test_quorum_ends_the_round_and_cancels_the_rest(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    await fake.reset(rate_hang=1.0)
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=60) as http:
        slug = await _agent(http, fake)
        response = await http.post(
            f"/v1/accounts/{slug}/discussions",
            headers=ADMIN,
            json={
                "prompt": "quick",
                "participants": ["demo", "demo", "bot"],
                "quorum": 2,
                "deadline_s": 20,
            },
        )
        deadline = time.monotonic() + 10
        rows = await _all_rows(http, slug)
        while any(r["status"] == "pending" for r in rows) and time.monotonic() < deadline:
            rows = await _all_rows(http, slug)
    assert response.status_code == 200, response.text
    answers = {a["participant"]: a for a in response.json()["rounds"][0]}
    assert answers["demo"]["answer"]
    assert answers["bot"]["error"]["code"] == "QUORUM_REACHED"
    slow = [r for r in rows if r["provider"] == "fake"]
    assert [r["status"] for r in slow] == ["cancelled"]


async def test_deadline_bounds_the_discussion(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    await fake.reset(rate_hang=1.0)
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=60) as http:
        slug = await _agent(http, fake)
        started = time.monotonic()
        response = await http.post(
            f"/v1/accounts/{slug}/discussions",
            headers=ADMIN,
            json={
                "prompt": "slow",
                "participants": ["bot", "demo"],
                "deadline_s": 2,
            },
        )
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    answers = {a["participant"]: a for a in response.json()["rounds"][0]}
    assert answers["demo"]["answer"]
    assert answers["bot"]["error"]["code"] == "PROVIDER_TIMEOUT"
    assert elapsed < 8


async def test_discussion_bad_input(settings: Settings, fake: FakeProviderProcess) -> None:
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=60) as http:
        slug = await _agent(http, fake)
        for body in [
            {"prompt": "x", "participants": []},
            {"prompt": "x", "participants": ["demo"], "quorum": 2},
            {"prompt": "x", "participants": ["demo"], "rounds": 0},
            {"prompt": "", "participants": ["demo"]},
            {"prompt": "x", "participants": ["demo"], "extra": True},
        ]:
            response = await http.post(f"/v1/accounts/{slug}/discussions", headers=ADMIN, json=body)
            assert response.status_code == 422, (body, response.text)
            assert response.json()["error"]["code"] == "VALIDATION_ERROR"
