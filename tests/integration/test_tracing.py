"""Traces (switchboard/telemetry.py): the tree of one run through the real app, recorded in
memory; nothing at all — not even the SDK imported — when traces are off; and the OTLP/HTTP
export the settings configure."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from switchboard.app import create_app
from switchboard.settings import Settings
from switchboard.telemetry import DISABLED, Telemetry
from tests.conftest import ADMIN_KEY, fresh_database, new_account

CHAT_ROUTE = "/v1/accounts/{account}/agents/{agent}/chat"
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


class Ended(SpanProcessor):
    """Wakes the test once every span it waits for has ended (a run's span can end just after
    its reply was sent): a barrier, not a sleep."""

    def __init__(self, *names: str) -> None:
        self._waiting = set(names)
        self.done = asyncio.Event()

    def on_end(self, span: ReadableSpan) -> None:
        self._waiting.discard(span.name)
        if not self._waiting:
            self.done.set()


@asynccontextmanager
async def traced(settings: Settings, telemetry: Telemetry) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, tracing into ``telemetry``, and a client for it."""
    app = create_app(settings, telemetry=telemetry)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


def attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_one_run_is_a_tree_of_request_agent_model_and_tool_spans_with_its_ledger_rows(
    settings: Settings, recorded: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = recorded
    ended = Ended(f"POST {CHAT_ROUTE}", "invoke_agent bot")
    provider.add_span_processor(ended)
    async with traced(settings, Telemetry(provider)) as client:
        slug, headers = await new_account(client)
        created = await client.post(
            f"/v1/accounts/{slug}/agents",
            headers=headers,
            json={"slug": "bot", "tools": ["calculate"]},
        )
        assert created.status_code == 201, created.text
        exporter.clear()
        assert (await client.get("/healthz")).status_code == 200  # probes are not traced
        response = await client.post(
            f"/v1/accounts/{slug}/agents/bot/chat",
            headers={
                **headers,
                "X-Request-ID": "trace-test-1",
                "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
            },
            json={"message": "what is 6*7?"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        rows = (
            await client.get(
                f"/v1/accounts/{slug}/llm-requests",
                headers=headers,
                params={"run_id": body["run_id"], "limit": 200},
            )
        ).json()["items"]
        async with asyncio.timeout(10):
            await ended.done.wait()
    assert len(rows) == 2  # the tool call, then the answer
    by_row = {row["id"]: row for row in rows}
    assert not [s for s in exporter.get_finished_spans() if "/healthz" in s.name]
    spans = [
        s for s in exporter.get_finished_spans() if s.context.trace_id == int(CLIENT_TRACE, 16)
    ]

    # The request: a SERVER span named after its route, continuing the client's trace.
    (request,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert request.name == f"POST {CHAT_ROUTE}"
    assert parent_of(request) == int(CLIENT_SPAN, 16)
    assert attrs(request) | {
        "http.request.method": "POST",
        "http.route": CHAT_ROUTE,
        "http.response.status_code": 200,
        "url.path": f"/v1/accounts/{slug}/agents/bot/chat",
        "switchboard.request_id": "trace-test-1",
        "switchboard.account": slug,
    } == attrs(request)

    # The run: the one invoke_agent span (Pydantic AI's own agent-run span is left out),
    # a child of the request, with the run's ids and the ledger's totals.
    (run,) = [s for s in spans if s.name.startswith("invoke_agent")]
    assert run.name == "invoke_agent bot"
    assert parent_of(run) == request.context.span_id
    run_attrs = attrs(run)
    assert run_attrs["gen_ai.operation.name"] == "invoke_agent"
    assert run_attrs["gen_ai.agent.name"] == "bot"
    assert run_attrs["gen_ai.conversation.id"] == body["conversation_id"]
    assert run_attrs["gen_ai.request.model"] == "demo"
    assert run_attrs["switchboard.account"] == slug
    assert run_attrs["switchboard.run_id"] == body["run_id"]
    assert run_attrs["switchboard.run.status"] == "succeeded"
    assert set(run_attrs["switchboard.ledger_ids"]) == set(by_row)  # type: ignore[arg-type]
    assert run_attrs["switchboard.cost_usd"] == body["cost_usd"]
    assert Decimal(body["cost_usd"]) == sum(Decimal(r["cost_usd"]) for r in rows) > 0
    assert run_attrs["gen_ai.aggregated_usage.input_tokens"] == body["usage"]["input_tokens"]
    assert run_attrs["gen_ai.aggregated_usage.output_tokens"] == body["usage"]["output_tokens"]

    # Pydantic AI's model spans: children of the run, one per ledger row, each carrying its
    # row's id and exact cost, and the same tokens the ledger billed.
    chats = sorted((s for s in spans if s.name.startswith("chat ")), key=lambda s: s.start_time)
    assert [s.name for s in chats] == ["chat demo", "chat demo"]
    assert {attrs(s)["switchboard.ledger_id"] for s in chats} == set(by_row)
    for chat in chats:
        chat_attrs = attrs(chat)
        row = by_row[str(chat_attrs["switchboard.ledger_id"])]
        assert parent_of(chat) == run.context.span_id
        assert chat.kind is SpanKind.CLIENT
        assert chat_attrs["gen_ai.operation.name"] == "chat"
        assert chat_attrs["gen_ai.agent.name"] == "bot"  # the run's baggage
        assert chat_attrs["gen_ai.conversation.id"] == body["conversation_id"]
        assert chat_attrs["switchboard.cost_usd"] == row["cost_usd"]
        assert chat_attrs["switchboard.ledger.status"] == row["status"] == "complete"
        assert chat_attrs["gen_ai.usage.input_tokens"] == row["input_tokens"] > 0
        assert chat_attrs["gen_ai.usage.output_tokens"] == row["output_tokens"] > 0
        assert "6*7" not in str(chat_attrs)  # content is off by default: message shapes only
        (event,) = [e for e in chat.events if e.name == "switchboard.ledger.settled"]
        assert dict(event.attributes or {})["switchboard.ledger_id"] == row["id"]

    # The tool: Pydantic AI's execute_tool span, in the run, between the two model calls.
    (tool,) = [s for s in spans if s.name.startswith("execute_tool")]
    assert tool.name == "execute_tool calculate"
    assert parent_of(tool) == run.context.span_id
    tool_attrs = attrs(tool)
    assert tool_attrs["gen_ai.operation.name"] == "execute_tool"
    assert tool_attrs["gen_ai.tool.name"] == "calculate"
    assert "6*7" not in str(tool_attrs)
    assert chats[0].end_time is not None
    assert tool.end_time is not None
    assert chats[0].end_time <= tool.start_time
    assert tool.end_time <= chats[1].start_time

    # Nothing else was traced under the run, and every span ended in a good state.
    assert {s.name for s in spans} == {request.name, run.name, "chat demo", tool.name}
    assert all(s.status.status_code is not StatusCode.ERROR for s in spans)


async def test_a_failed_run_marks_its_span_and_a_request_without_traceparent_starts_a_trace(
    settings: Settings, recorded: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """An agent whose model cannot be reached fails its run: the run's span says so."""
    provider, exporter = recorded
    ended = Ended("invoke_agent down")
    provider.add_span_processor(ended)
    async with traced(settings, Telemetry(provider)) as client:
        slug, headers = await new_account(client)
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        created = await client.post(
            f"/v1/accounts/{slug}/agents",
            headers=admin,  # an endpoint is the operator's to set
            json={
                "slug": "down",
                "model": "local:m",
                "config": {
                    "providers": {"local": {"base_url": "http://127.0.0.1:9/v1"}},
                    "retry": {"attempts": 1},
                },
            },
        )
        assert created.status_code == 201, created.text
        response = await client.post(
            f"/v1/accounts/{slug}/agents/down/chat", headers=headers, json={"message": "hi"}
        )
        assert response.status_code >= 500, response.text
        async with asyncio.timeout(10):
            await ended.done.wait()
    (run,) = [s for s in exporter.get_finished_spans() if s.name == "invoke_agent down"]
    assert run.parent is not None  # the request's span, itself the root of a new trace
    (request,) = [
        s for s in exporter.get_finished_spans() if s.context.span_id == run.parent.span_id
    ]
    assert request.parent is None
    assert attrs(run)["switchboard.run.status"] == "failed"
    assert run.status.status_code is StatusCode.ERROR
    assert attrs(run)["error.type"] == response.json()["error"]["code"]


async def test_with_traces_off_nothing_is_recorded_and_the_sdk_is_never_imported(
    tmp_path: Path,
) -> None:
    """In a process of its own (the tests' SDK is imported here): a chat with tools runs with
    traces off and the SDK stays unimported; then, with a global provider recording (someone
    else's), a second chat still leaves no span."""
    script = textwrap.dedent(
        """
        import asyncio, os, sys

        import httpx
        from asgi_lifespan import LifespanManager
        from pydantic import SecretStr

        from switchboard.app import create_app
        from switchboard.settings import Settings

        ADMIN = {"Authorization": "Bearer " + os.environ["TEST_ADMIN_KEY"]}

        async def chat(client, slug, headers, message):
            response = await client.post(
                f"/v1/accounts/{slug}/agents/bot/chat", headers=headers, json={"message": message}
            )
            assert response.status_code == 200, response.text
            assert len(response.json()["llm_request_ids"]) == 2

        async def main():
            settings = Settings(
                _env_file=None,
                database_url=os.environ["TEST_DATABASE_URL"],
                admin_key=SecretStr(os.environ["TEST_ADMIN_KEY"]),
                embedder="none",
            )
            app = create_app(settings)
            async with LifespanManager(app) as manager:
                transport = httpx.ASGITransport(app=manager.app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    account = {"slug": "a", "name": "a"}
                    await client.post("/v1/accounts", json=account, headers=ADMIN)
                    key = await client.post("/v1/accounts/a/keys", json={}, headers=ADMIN)
                    headers = {"Authorization": "Bearer " + key.json()["key"]}
                    await client.post(
                        "/v1/accounts/a/agents",
                        headers=headers,
                        json={"slug": "bot", "tools": ["calculate"]},
                    )
                    await chat(client, "a", headers, "what is 6*7?")
                    loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk"))
                    assert not loaded, loaded

                    from opentelemetry import trace
                    from opentelemetry.sdk.trace import TracerProvider
                    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
                    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                        InMemorySpanExporter,
                    )

                    exporter = InMemorySpanExporter()
                    provider = TracerProvider()
                    provider.add_span_processor(SimpleSpanProcessor(exporter))
                    trace.set_tracer_provider(provider)
                    await chat(client, "a", headers, "and 3+4?")
                    spans = exporter.get_finished_spans()
                    assert not spans, [s.name for s in spans]
            print("ok")

        asyncio.run(main())
        """
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "SWITCHBOARD_"))
    }
    async with fresh_database("sqlite", tmp_path) as url:
        env |= {"TEST_DATABASE_URL": url, "TEST_ADMIN_KEY": ADMIN_KEY}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(120):
            output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    assert output.decode().strip().endswith("ok")


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector's traces endpoint, keeping what it receives."""

    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_otlp_endpoint_in_the_environment_turns_traces_on_and_exports_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``auto``: the standard OTEL_EXPORTER_OTLP_ENDPOINT is enough; the spans reach it over
    OTLP/HTTP (protobuf), with the service's name, once the exporter is flushed at shutdown."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    server = HTTPServer(("127.0.0.1", 0), _Collector)
    _Collector.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
        telemetry = Telemetry.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
        assert telemetry.enabled
        with telemetry.tracer.start_as_current_span("probe"):
            pass
        telemetry.close()
    finally:
        server.shutdown()
        server.server_close()
    assert [path for path, _ in _Collector.received] == ["/v1/traces"]
    exported = ExportTraceServiceRequest.FromString(_Collector.received[0][1])
    (resource_spans,) = exported.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "switchboard"
    names = [s.name for scope in resource_spans.scope_spans for s in scope.spans]
    assert names == ["probe"]


def test_without_an_endpoint_traces_are_off_unless_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert Telemetry.from_settings(Settings(_env_file=None)) is DISABLED  # type: ignore[call-arg]
