"""Runs rendered as Chat Completions, with the ``openai`` package's own types so the wire shapes
stay those its SDKs parse: a ``chat.completion``, or ``chat.completion.chunk`` events ending
with one ``finish_reason``, the turn's usage (``stream_options.include_usage``) and ``[DONE]``.

Tool calls the server ran are never sent as ``tool_calls`` (a client would try to run them):
the agent's ``openai.tool_calls`` shows them not at all, as reasoning text, or as the
``<details type="tool_calls">`` blocks Open WebUI renders."""

from __future__ import annotations

import html
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage
from sse_starlette import ServerSentEvent

from switchboard.openai_api.errors import openai_error_body
from switchboard.runs.schemas import EventView, RunView
from switchboard.runtime.delivery import stopped_error

TOOL_EVENTS = ("tool_call", "tool_result")


def completion_id(run_id: uuid.UUID) -> str:
    return f"chatcmpl-{run_id.hex}"


def usage_of(result: dict[str, Any]) -> CompletionUsage:
    """The turn's usage: every provider call of the run (the ledger's rows), cached included."""
    usage = result["usage"]
    return CompletionUsage.model_validate(
        {
            "prompt_tokens": usage["input_tokens"],
            "completion_tokens": usage["output_tokens"],
            "total_tokens": usage["input_tokens"] + usage["output_tokens"],
            "prompt_tokens_details": {"cached_tokens": usage.get("cached_tokens", 0)},
        }
    )


def vendor(
    run_id: uuid.UUID,
    conversation_id: uuid.UUID | str,
    forked_from: uuid.UUID | None,
    result: dict[str, Any] | None,
) -> dict[str, Any]:
    """What only Switchboard knows: the run, the conversation and the exact cost."""
    out: dict[str, Any] = {
        "run_id": str(run_id),
        "conversation_id": str(conversation_id),
        "forked_from": None if forked_from is None else str(forked_from),
    }
    if result is not None:
        out["cost_usd"] = result["cost_usd"]
        out["llm_request_ids"] = result["llm_request_ids"]
    return out


@dataclass(slots=True)
class ToolView:
    """The tool events of a run as the agent's ``openai.tool_calls`` shows them."""

    mode: str
    _args: dict[str, Any] = field(default_factory=dict)

    def show(self, event: EventView) -> tuple[str, str] | None:
        """(field, text) to add to the answer for one tool event: ``content`` or
        ``reasoning_content``; None when nothing is shown."""
        data = event.data
        if self.mode == "hidden" or event.type not in TOOL_EVENTS:
            return None
        if event.type == "tool_call":
            self._args[data["id"]] = data.get("args")
            if self.mode == "reasoning":
                args = json.dumps(data.get("args"), ensure_ascii=False, default=str)
                return "reasoning_content", f"Calling {data['name']}({args})\n"
            return None
        if self.mode == "reasoning":
            return "reasoning_content", f"{data['name']} returned: {data['content']}\n"
        arguments = json.dumps(self._args.pop(data["id"], None), ensure_ascii=False, default=str)
        result = json.dumps(data["content"], ensure_ascii=False, default=str)
        return (
            "content",
            f'<details type="tool_calls" done="true" id="{html.escape(data["id"])}" '
            f'name="{html.escape(data["name"])}" arguments="{html.escape(arguments)}" '
            f'result="{html.escape(result)}">\n<summary>Tool Executed</summary>\n</details>\n',
        )


async def tool_text(events: AsyncIterator[EventView], mode: str) -> dict[str, str]:
    """A run's tool events as text per field (``content``, ``reasoning_content``)."""
    shown: dict[str, str] = {}
    view = ToolView(mode)
    async for event in events:
        got = view.show(event)
        if got is not None:
            shown[got[0]] = shown.get(got[0], "") + got[1]
    return shown


def completion(
    run: RunView, model: str, forked_from: uuid.UUID | None, tools: dict[str, str]
) -> dict[str, Any]:
    result = run.result or {}
    message: dict[str, Any] = {
        "role": "assistant",
        "content": tools.get("content", "") + result.get("reply", ""),
        "refusal": None,
    }
    if "reasoning_content" in tools:
        message["reasoning_content"] = tools["reasoning_content"]
    answer = ChatCompletion.model_validate(
        {
            "id": completion_id(run.id),
            "object": "chat.completion",
            "created": int(run.created_at.timestamp() if run.created_at else time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            ],
            "usage": usage_of(result),
            "switchboard": vendor(run.id, run.conversation_id, forked_from, result),
        }
    )
    return answer.model_dump(mode="json", exclude_unset=True)


@dataclass(slots=True)
class ChunkStream:
    """One run's events as ``chat.completion.chunk`` Server-Sent Events."""

    run: RunView
    model: str
    forked_from: uuid.UUID | None
    include_usage: bool
    tools: ToolView
    created: int = field(default_factory=lambda: int(time.time()))

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> ServerSentEvent:
        chunk = ChatCompletionChunk.model_validate(
            {
                "id": completion_id(self.run.id),
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": choices,
                **extra,
            }
        )
        return ServerSentEvent(chunk.model_dump_json(exclude_unset=True))

    def _delta(self, **delta: Any) -> ServerSentEvent:
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": None}])

    async def events(self, followed: AsyncIterator[EventView]) -> AsyncIterator[ServerSentEvent]:
        yield self._delta(role="assistant", content="")
        async for event in followed:
            if event.type == "delta":
                yield self._delta(content=event.data["text"])
            elif event.type in TOOL_EVENTS:
                shown = self.tools.show(event)
                if shown is not None:
                    yield self._delta(**{shown[0]: shown[1]})
            elif event.type == "done":
                info = vendor(
                    self.run.id, event.data["conversation_id"], self.forked_from, event.data
                )
                yield self._chunk(
                    [{"index": 0, "delta": {}, "finish_reason": "stop"}], switchboard=info
                )
                if self.include_usage:
                    yield self._chunk([], usage=usage_of(event.data), switchboard=info)
                yield ServerSentEvent("[DONE]")
                return
            elif event.type in ("error", "cancelled", "interrupted"):
                yield ServerSentEvent(json.dumps(openai_error_body(stopped_error(event))))
                return
