"""An OpenAI-compatible fake provider (``POST /v1/chat/completions``, plain and streamed with
usage in the last chunk) for tests, demos and load tests. Deterministic given its seed.

``GET /_stats`` reports what it served (``GET /_stats/responses``: per response id);
``POST /_stats/reset`` clears it; ``POST /_config`` changes its behaviour at run time (the same
fields as the CLI options)."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from switchboard.fakeprovider.behaviour import Behaviour, Stats
from switchboard.schema_args import args_for


def count_tokens(text: str) -> int:
    return max(1, len(text.split()))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages", []):
        total += 4 + count_tokens(_text_of(message.get("content")))
        for call in message.get("tool_calls") or []:
            total += count_tokens(json.dumps(call.get("function", {})))
    total += sum(count_tokens(json.dumps(t)) for t in body.get("tools") or [])
    return total


def _plan(body: dict[str, Any], calls: int) -> tuple[str | None, list[dict[str, Any]]]:
    messages = body.get("messages") or [{}]
    last = messages[-1]
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    if tools and last.get("role") == "user":
        text = _text_of(last.get("content"))
        return None, [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {
                    "name": tool["function"]["name"],
                    "arguments": json.dumps(
                        args_for(tool["function"].get("parameters") or {}, text)
                    ),
                },
            }
            for tool in tools[: max(calls, 1)]
        ]
    if last.get("role") == "tool":
        results = [m for m in messages if m.get("role") == "tool"]
        return f"Based on {len(results)} tool results: " + "; ".join(
            _text_of(m.get("content"))[:80] for m in results[-4:]
        ), []
    return "Fake answer to: " + _text_of(last.get("content"))[:200], []


class FakeProvider:
    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.stats = Stats()
        self._random = random.Random(self.behaviour.seed)  # noqa: S311 - fault injection

    def reset(self) -> None:
        self.stats = Stats()
        self._random = random.Random(self.behaviour.seed)  # noqa: S311

    def _fault(self) -> str | None:
        roll = self._random.random()
        b = self.behaviour
        for name, rate in (
            ("429", b.rate_429),
            ("500", b.rate_500),
            ("503", b.rate_503),
            ("400", b.rate_400),
            ("hang", b.rate_hang),
            ("cut", b.rate_cut),
        ):
            if roll < rate:
                return name
            roll -= rate
        return None

    async def completions(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": {"message": "invalid JSON"}}, status_code=400)
        self.stats.enter()
        streaming = False
        try:
            fault = self._fault()
            if self.behaviour.latency_s:
                await asyncio.sleep(self.behaviour.latency_s)
            if fault in ("429", "500", "503", "400"):
                self.stats.by_status[fault] += 1
                headers = (
                    {"retry-after": f"{self.behaviour.retry_after_s:g}"} if fault == "429" else {}
                )
                return JSONResponse(
                    {"error": {"message": f"injected {fault}", "type": "fake", "code": fault}},
                    status_code=int(fault),
                    headers=headers,
                )
            if fault == "hang":
                self.stats.by_status["hang"] += 1
                await asyncio.sleep(3600)
            text, tool_calls = _plan(body, self.behaviour.parallel_tool_calls)
            usage = {
                "prompt_tokens": _prompt_tokens(body),
                "completion_tokens": count_tokens(text or json.dumps(tool_calls)),
            }
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            if body.get("stream"):
                streaming = True
                options = body.get("stream_options") or {}
                return StreamingResponse(
                    self._stream(
                        body,
                        text,
                        tool_calls,
                        usage,
                        include_usage=bool(options.get("include_usage")),
                        continuous=bool(options.get("continuous_usage_stats")),
                        cut=fault == "cut",
                    ),
                    media_type="text/event-stream",
                )
            self._count(usage, "200")
            response_id = f"chatcmpl-{uuid.uuid4().hex}"
            self.stats.served(
                response_id,
                status="200",
                prompt_tokens=usage["prompt_tokens"],
                completion_tokens=usage["completion_tokens"],
            )
            return JSONResponse(
                {
                    "id": response_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": text,
                                **({"tool_calls": tool_calls} if tool_calls else {}),
                            },
                            "finish_reason": "tool_calls" if tool_calls else "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        finally:
            if not streaming:
                self.stats.leave()

    def _count(self, usage: dict[str, int], status: str) -> None:
        self.stats.by_status[status] += 1
        self.stats.prompt_tokens += usage["prompt_tokens"]
        self.stats.completion_tokens += usage["completion_tokens"]

    async def _stream(
        self,
        body: dict[str, Any],
        text: str | None,
        tool_calls: list[dict[str, Any]],
        usage: dict[str, int],
        *,
        include_usage: bool,
        continuous: bool,
        cut: bool,
    ) -> AsyncIterator[bytes]:
        response_id = f"chatcmpl-{uuid.uuid4().hex}"
        base = {
            "id": response_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
        }

        emitted = 0

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            nonlocal emitted
            payload: dict[str, Any] = {
                **base,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if continuous:  # cumulative usage so far, as vLLM reports it
                emitted += count_tokens(delta["content"]) if delta.get("content") else 0
                done = usage["completion_tokens"] if finish else emitted
                payload["usage"] = {
                    "prompt_tokens": usage["prompt_tokens"],
                    "completion_tokens": done,
                    "total_tokens": usage["prompt_tokens"] + done,
                }
            return f"data: {json.dumps(payload)}\n\n".encode()

        pieces: list[bytes] = [chunk({"role": "assistant", "content": ""})]
        if text is not None:
            words = text.split(" ")
            pieces += [
                chunk({"content": w if i == len(words) - 1 else w + " "})
                for i, w in enumerate(words)
            ]
        for index, call in enumerate(tool_calls):
            pieces.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call["id"],
                                "type": "function",
                                "function": {
                                    "name": call["function"]["name"],
                                    "arguments": call["function"]["arguments"],
                                },
                            }
                        ]
                    }
                )
            )
        pieces.append(chunk({}, "tool_calls" if tool_calls else "stop"))
        sent = 0  # completion tokens of the text sent so far
        status = "cancelled"
        try:
            for number, piece in enumerate(pieces):
                if cut and number >= max(len(pieces) // 2, 1):
                    self.stats.by_status["cut"] += 1
                    status = "cut"
                    return
                if self.behaviour.stream_pacing_s and number:
                    await asyncio.sleep(self.behaviour.stream_pacing_s)
                yield piece
                if text is not None and 0 < number <= len(text.split(" ")):
                    sent += count_tokens(text.split(" ")[number - 1])
            if include_usage:
                usage_chunk = {**base, "choices": [], "usage": usage}
                yield f"data: {json.dumps(usage_chunk)}\n\n".encode()
            yield b"data: [DONE]\n\n"
            self._count(usage, "200")
            status, sent = "200", usage["completion_tokens"]
        finally:
            self.stats.leave()
            self.stats.served(
                response_id,
                status=status,
                prompt_tokens=usage["prompt_tokens"],
                completion_tokens=sent,
            )

    async def stats_endpoint(self, _: Request) -> Response:
        return JSONResponse(self.stats.as_dict())

    async def responses_endpoint(self, _: Request) -> Response:
        return JSONResponse(self.stats.responses)

    async def reset_endpoint(self, _: Request) -> Response:
        self.reset()
        return JSONResponse(self.stats.as_dict())

    async def config_endpoint(self, request: Request) -> Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            self.behaviour.update(changes)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": {"message": str(exc)}}, status_code=400)
        self._random = random.Random(self.behaviour.seed)  # noqa: S311
        return JSONResponse(self.behaviour.as_dict())

    async def models_endpoint(self, _: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})


def create_fake_provider(behaviour: Behaviour | None = None) -> Starlette:
    fake = FakeProvider(behaviour)
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", fake.completions, methods=["POST"]),
            Route("/v1/models", fake.models_endpoint, methods=["GET"]),
            Route("/_stats", fake.stats_endpoint, methods=["GET"]),
            Route("/_stats/reset", fake.reset_endpoint, methods=["POST"]),
            Route("/_stats/responses", fake.responses_endpoint, methods=["GET"]),
            Route("/_config", fake.config_endpoint, methods=["GET", "POST"]),
        ]
    )
    app.state.fake = fake
    return app
