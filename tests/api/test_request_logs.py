"""A chat request's X-Request-ID comes back, and the log lines of the run it started — in the
run's own task, its tool calls included — carry it with the account, agent, conversation and
run ids."""

from __future__ import annotations

import httpx
import pytest

from tests.api.test_chat_api import ledger
from tests.conftest import ADMIN, new_account
from tests.unit.test_logs import capture_json_logs


async def test_the_lines_of_a_requests_run_carry_its_ids(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_LOGS_PROVIDER_KEY", "not-a-real-key")
    slug, headers = await new_account(client)
    created = await client.post(
        f"/v1/accounts/{slug}/agents",
        headers=ADMIN,
        json={
            "slug": "unreachable",
            "model": "local:m",
            "config": {
                "providers": {
                    "local": {
                        "base_url": "http://127.0.0.1:9/v1",  # nothing listens: refused
                        "api_key_env": "TEST_LOGS_PROVIDER_KEY",
                    }
                },
                "retry": {"attempts": 2, "base_s": 0, "cap_s": 0},
            },
        },
    )
    assert created.status_code == 201, created.text
    with capture_json_logs() as lines:
        failed = await client.post(
            f"/v1/accounts/{slug}/agents/unreachable/chat",
            headers={**headers, "X-Request-ID": "abc"},
            json={"message": "hi"},
        )
    assert failed.status_code >= 500, failed.text
    assert failed.headers["x-request-id"] == "abc"
    assert all(line["request_id"] == "abc" for line in lines.all())
    (run_line,) = [line for line in lines.all() if line["logger"] == "switchboard.runs"]
    run_id = run_line["run_id"]
    assert run_line["message"].startswith(f"run {run_id} failed: ")
    assert (run_line["account"], run_line["agent"]) == (slug, "unreachable")
    conversation_id = run_line["conversation_id"]
    run = await client.get(f"/v1/accounts/{slug}/agents/unreachable/runs/{run_id}", headers=headers)
    assert run.json()["conversation_id"] == conversation_id
    # Each failed attempt names its ledger row; the retry and the run's failure their run.
    attempts = lines.matching("provider call to model 'm' failed: ")
    rows = await ledger(client, slug, headers, conversation_id=conversation_id)
    assert sorted(line["llm_request_id"] for line in attempts) == sorted(r["id"] for r in rows)
    assert len(rows) == 2
    (retry,) = lines.matching("retrying in")
    for line in (*attempts, retry):
        assert (line["account"], line["run_id"], line["conversation_id"]) == (
            slug,
            run_id,
            conversation_id,
        )
    (api_line,) = lines.matching("request failed")  # the 5xx line, in the request's own task
    assert (api_line["account"], api_line["agent"]) == (slug, "unreachable")

    # A tool call runs in the run's task: its warning carries the run's ids too.
    created = await client.post(
        f"/v1/accounts/{slug}/agents",
        headers=ADMIN,
        json={
            "slug": "flaky",
            "tools": ["boom"],
            "config": {
                "tool_modules": ["tests.tools"],
                "custom_tools": {"boom": "tests.tools:boom"},
            },
        },
    )
    assert created.status_code == 201, created.text
    with capture_json_logs() as lines:
        chat = await client.post(
            f"/v1/accounts/{slug}/agents/flaky/chat", headers=headers, json={"message": "try"}
        )
    assert chat.status_code == 200, chat.text
    request_id = chat.headers["x-request-id"]
    (tool_line,) = lines.matching("tool boom failed")
    assert tool_line["request_id"] == request_id
    assert (tool_line["account"], tool_line["agent"]) == (slug, "flaky")
    assert tool_line["conversation_id"] == chat.json()["conversation_id"]
    assert tool_line["run_id"]
