"""Issue 15, section 3: ``/mcp`` with the official ``mcp`` client over real HTTP — per-account
tools, ``ask_<agent>`` as a billed run, directory search, loud errors, the HTTP gates (401 with
the protected-resource metadata, 403 for the admin key, 421 for an unknown Host), in both
protocol eras the SDK serves (the initialize handshake and the 2026 per-request envelope)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import httpx2
import pytest
from fastapi import FastAPI
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult
from mcp_types.version import LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION
from typer.testing import CliRunner

from switchboard import cli
from switchboard.bootstrap import Container
from switchboard.db.uow import AccountScope
from switchboard.directory.synthetic import practitioners
from switchboard.settings import Settings
from tests.conftest import ADMIN, ADMIN_KEY, unique
from tests.directories import load, set_directories
from tests.live import FakeProviderProcess, fake_agent_body, live_app
from tests.runs.helpers import ledger_of, messages_of

ERAS = ["handshake", "modern"]


@dataclass
class Tenant:
    slug: str
    key: str
    scope: AccountScope

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class Env:
    base: str
    http: httpx.AsyncClient
    container: Container
    fake: FakeProviderProcess

    async def tenant(self, *agents: dict[str, Any]) -> Tenant:
        slug = unique("mcp")
        created = await self.http.post(
            "/v1/accounts", json={"slug": slug, "name": slug}, headers=ADMIN
        )
        assert created.status_code == 201, created.text
        key = await self.http.post(f"/v1/accounts/{slug}/keys", json={}, headers=ADMIN)
        assert key.status_code == 201, key.text
        for agent in agents:
            body = fake_agent_body(agent.pop("slug"), self.fake.url) | agent
            response = await self.http.post(f"/v1/accounts/{slug}/agents", json=body, headers=ADMIN)
            assert response.status_code == 201, response.text
        return Tenant(slug, key.json()["key"], AccountScope(uuid.UUID(created.json()["id"]), slug))

    @asynccontextmanager
    async def session(self, key: str, *, era: str = "handshake") -> AsyncIterator[ClientSession]:
        """A real MCP client session over HTTP, negotiated in ``era``."""
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
            streamable_http_client(f"{self.base}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            if era == "modern":
                await session.discover()
                assert session.protocol_version == LATEST_MODERN_VERSION
            else:
                await session.initialize()
                assert session.protocol_version == LATEST_HANDSHAKE_VERSION
            yield session


@pytest.fixture
async def env(settings: Settings, fake: FakeProviderProcess) -> AsyncIterator[Env]:
    async with (
        live_app(settings) as (base, app),
        httpx.AsyncClient(base_url=base, timeout=60) as http,
    ):
        yield Env(base, http, _container(app), fake)


def _container(app: FastAPI) -> Container:
    container: Container = app.state.container
    return container


async def _names(session: ClientSession) -> set[str]:
    return {tool.name for tool in (await session.list_tools()).tools}


def _error_code(result: CallToolResult) -> str:
    assert result.is_error, result
    assert isinstance(result.structured_content, dict)
    return str(result.structured_content["error"]["code"])


@pytest.mark.parametrize("era", ERAS)
async def test_each_key_lists_only_its_own_accounts_tools(env: Env, era: str) -> None:
    ours = await env.tenant(
        {"slug": "bot", "description": "Answers questions about the clinic"},
        {"slug": "helper"},
        {"slug": "off", "enabled": False},
    )
    await set_directories(env.container, ours.scope)
    theirs = await env.tenant({"slug": "secret", "description": "Their private agent"})
    empty = await env.tenant()

    async with env.session(ours.key, era=era) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == {"ask_bot", "ask_helper", "search_practitioners", "search_locations"}
    assert tools["ask_bot"].description == "Answers questions about the clinic"
    assert tools["ask_bot"].input_schema["required"] == ["message"]
    assert tools["ask_bot"].output_schema is not None
    assert {"reply", "conversation_id", "run_id", "cost_usd"} <= set(
        tools["ask_bot"].output_schema["required"]
    )
    assert (
        "specialty"
        in tools["search_practitioners"].input_schema["properties"]["filters"]["properties"]
    )

    async with env.session(theirs.key, era=era) as session:
        assert await _names(session) == {"ask_secret"}
    async with env.session(empty.key, era=era) as session:
        assert await _names(session) == set()


@pytest.mark.parametrize("era", ERAS)
async def test_ask_is_a_billed_run_and_continues_its_conversation(env: Env, era: str) -> None:
    tenant = await env.tenant({"slug": "bot"})
    async with env.session(tenant.key, era=era) as session:
        first = await session.call_tool("ask_bot", {"message": "hello there"})
        assert not first.is_error, first
        answer = first.structured_content
        assert isinstance(answer, dict)
        assert answer["reply"]
        conversation = answer["conversation_id"]
        again = await session.call_tool(
            "ask_bot", {"message": "and again", "conversation_id": conversation}
        )
        assert not again.is_error, again
        follow_up = again.structured_content
        assert isinstance(follow_up, dict)

    assert follow_up["conversation_id"] == conversation
    assert follow_up["run_id"] != answer["run_id"]
    rows = await ledger_of(env.http, tenant.slug, tenant.headers, conversation_id=conversation)
    for out in (answer, follow_up):
        mine = [row for row in rows if row["run_id"] == out["run_id"]]
        assert {row["id"] for row in mine} == set(out["llm_request_ids"]) != set()
        assert all(row["status"] == "complete" for row in mine)
        assert Decimal(out["cost_usd"]) == sum(Decimal(row["cost_usd"]) for row in mine) > 0
    run = await env.http.get(
        f"/v1/accounts/{tenant.slug}/agents/bot/runs/{answer['run_id']}", headers=tenant.headers
    )
    assert run.status_code == 200, run.text
    assert run.json()["status"] == "succeeded"
    messages = await messages_of(env.http, tenant.slug, tenant.headers, conversation)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]


@pytest.mark.parametrize("era", ERAS)
async def test_a_directory_search_tool_returns_entries(env: Env, era: str) -> None:
    tenant = await env.tenant()
    await set_directories(env.container, tenant.scope)
    await load(env.container, tenant.scope, "practitioners", practitioners(40))
    async with env.session(tenant.key, era=era) as session:
        found = await session.call_tool(
            "search_practitioners", {"query": "cardiology", "limit": 3, "mode": "text"}
        )
        filtered = await session.call_tool(
            "search_practitioners", {"filters": {"accepting_new_patients": True}, "limit": 50}
        )
    assert not found.is_error, found
    assert isinstance(found.structured_content, dict)
    items = found.structured_content["items"]
    assert 0 < len(items) <= 3
    assert all("cardio" in str(item["data"]).lower() for item in items)
    assert isinstance(filtered.structured_content, dict)
    assert filtered.structured_content["items"]
    assert all(i["data"]["accepting_new_patients"] for i in filtered.structured_content["items"])


@pytest.mark.parametrize("era", ERAS)
async def test_errors_are_loud(env: Env, era: str) -> None:
    ours = await env.tenant({"slug": "bot"}, {"slug": "off", "enabled": False})
    theirs = await env.tenant({"slug": "secret"})
    async with env.session(ours.key, era=era) as session:
        # Tools the key does not have: protocol errors naming the cause.
        for name, cause in [
            ("ask_nobody", "no agent 'nobody'"),
            ("ask_secret", "no agent 'secret'"),  # another account's agent
            ("search_nothing", "no directory 'nothing'"),
            ("delete_everything", "unknown tool"),
            ("ask_off", "agent 'off' is disabled"),
        ]:
            with pytest.raises(MCPError) as refused:
                await session.call_tool(name, {"message": "hi"})
            assert refused.value.code == INVALID_PARAMS
            assert name in refused.value.message
            assert cause in refused.value.message

        # Bad arguments: a tool error with the REST code, nothing run.
        bad = await session.call_tool("ask_bot", {"message": "", "extra": 1})
        assert _error_code(bad) == "VALIDATION_ERROR"

        # A budget refusal: the REST code and details, as POST …/chat would answer 402.
        budget = await env.http.put(
            f"/v1/accounts/{ours.slug}/budget",
            headers=ADMIN,
            json={"limit_usd": "0.000000001", "period": "day"},
        )
        assert budget.status_code == 200, budget.text
        broke = await session.call_tool("ask_bot", {"message": "hello"})
        assert _error_code(broke) == "BUDGET_EXCEEDED"
        assert isinstance(broke.structured_content, dict)
        assert broke.structured_content["error"]["retryable"] is False
        assert "worst_case_usd" in broke.structured_content["error"]["details"]
    assert await ledger_of(env.http, ours.slug, ours.headers, status="complete") == []
    async with env.session(theirs.key, era=era) as session:
        assert await _names(session) == {"ask_secret"}


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": LATEST_HANDSHAKE_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}
JSON_HEADERS = {"Accept": "application/json, text/event-stream"}


async def test_http_gates(env: Env) -> None:
    tenant = await env.tenant()
    http = env.http

    # No key, or a wrong one: 401 pointing to the protected-resource metadata.
    for headers in ({}, {"Authorization": "Bearer sk-not-a-key"}):
        response = await http.post("/mcp", json=INITIALIZE, headers=JSON_HEADERS | headers)
        assert response.status_code == 401, response.text
        challenge = response.headers["www-authenticate"]
        metadata_url = f"{env.base}/.well-known/oauth-protected-resource/mcp"
        assert challenge.startswith("Bearer ")
        assert f'resource_metadata="{metadata_url}"' in challenge
    metadata = await http.get("/.well-known/oauth-protected-resource/mcp")
    assert metadata.status_code == 200, metadata.text
    assert metadata.json()["resource"] == f"{env.base}/mcp"
    assert metadata.json()["bearer_methods_supported"] == ["header"]

    # The admin key is valid, but /mcp serves one account's tools: 403.
    admin = await http.post("/mcp", json=INITIALIZE, headers=JSON_HEADERS | ADMIN)
    assert admin.status_code == 403, admin.text
    assert "insufficient_scope" in admin.headers["www-authenticate"]

    # An account key: served (JSON responses, no session: stateless).
    ok = await http.post("/mcp", json=INITIALIZE, headers=JSON_HEADERS | tenant.headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"]["serverInfo"]["name"] == "switchboard"
    assert "mcp-session-id" not in ok.headers

    # DNS-rebinding protection: an unknown Host is 421 (before the key is even looked at), an
    # unknown Origin 403.
    for headers in (tenant.headers, {}, {"Authorization": f"Bearer {ADMIN_KEY}"}):
        evil = await http.post(
            "/mcp", json=INITIALIZE, headers=JSON_HEADERS | headers | {"Host": "evil.example"}
        )
        assert evil.status_code == 421, evil.text
    evil_metadata = await http.get(
        "/.well-known/oauth-protected-resource/mcp", headers={"Host": "evil.example"}
    )
    assert evil_metadata.status_code == 421
    cross = await http.post(
        "/mcp",
        json=INITIALIZE,
        headers=JSON_HEADERS | tenant.headers | {"Origin": "http://evil.example"},
    )
    assert cross.status_code == 403, cross.text


async def test_allowed_hosts_are_configurable(
    settings: Settings, fake: FakeProviderProcess
) -> None:
    custom = settings.model_copy(update={"mcp_allowed_hosts": ["switchboard.example"]})
    async with (
        live_app(custom) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=60) as http,
    ):
        local = await http.post("/mcp", json=INITIALIZE, headers=JSON_HEADERS)
        assert local.status_code == 421  # 127.0.0.1 is no longer listed
        named = await http.post(
            "/mcp", json=INITIALIZE, headers=JSON_HEADERS | {"Host": "switchboard.example"}
        )
        assert named.status_code == 401
        assert (
            'resource_metadata="http://switchboard.example/.well-known/oauth-protected-resource/mcp"'
            in named.headers["www-authenticate"]
        )


def test_the_mcp_command_prints_the_url_and_client_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("SWITCHBOARD_API_KEY", "sk_from_env")
    runner = CliRunner()
    shown = runner.invoke(cli.app, ["mcp", "--client", "vscode", "--url", "https://sb.example/"])
    assert shown.exit_code == 0, shown.output
    assert "MCP endpoint (Streamable HTTP): https://sb.example/mcp" in shown.output
    snippet = shown.output.split("VS Code (.vscode/mcp.json):\n", 1)[1].split("\n\n", 1)[0]
    assert json.loads(snippet) == {
        "servers": {
            "switchboard": {
                "type": "http",
                "url": "https://sb.example/mcp",
                "headers": {"Authorization": "Bearer sk_from_env"},
            }
        }
    }
    every = runner.invoke(cli.app, ["mcp", "--key", "sk_option"])
    assert every.exit_code == 0, every.output
    assert "http://127.0.0.1:8000/mcp" in every.output
    assert "claude mcp add --transport http switchboard" in every.output
    assert '"mcpServers"' in every.output
    assert "sk_from_env" not in every.output  # the option wins over the variable
    admin = runner.invoke(cli.app, ["mcp", "--key", ADMIN_KEY])
    assert admin.exit_code == 1
