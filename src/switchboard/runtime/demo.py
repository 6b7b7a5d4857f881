"""The offline ``demo`` model: deterministic, no key, no network, but it exercises the real
paths. With tools available and a fresh user message it calls several tools in one response
(parallel tool calls) with arguments taken from the message; after the results it answers from
them. Token usage is Pydantic AI's estimate (non-zero, honest), priced like any other model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

from pydantic_ai import ModelResponse, TextPart, ToolCallPart
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    RetryPromptPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from switchboard.runtime.prompts import SUMMARY_REQUEST
from switchboard.schema_args import args_for

MAX_PARALLEL_CALLS = 3
SHORT_LIMIT = 1200  # characters of each tool result quoted in the final answer


def demo_model() -> FunctionModel:
    return FunctionModel(_respond, stream_function=_stream, model_name="demo")


def _user_text(message: ModelMessage) -> str | None:
    if not isinstance(message, ModelRequest):
        return None
    texts = [p.content for p in message.parts if isinstance(p, UserPromptPart)]
    return " ".join(t for t in texts if isinstance(t, str)) if texts else None


def _plan(messages: Sequence[ModelMessage], info: AgentInfo) -> list[ToolCallPart] | str:
    last = messages[-1]
    user_text = _user_text(last)
    if user_text is not None and user_text.startswith(SUMMARY_REQUEST):
        lines = [line for line in user_text.splitlines()[1:] if line.strip()]
        return f"Summary of {len(lines)} earlier messages: " + " / ".join(
            line[:60] for line in lines[-5:]
        )
    if user_text is not None and info.function_tools:
        searches = _directory_searches(info, user_text)
        if searches:
            return searches
        return [
            ToolCallPart(
                tool.name,
                args_for(tool.parameters_json_schema, user_text),
                tool_call_id=f"demo_{index}",
            )
            for index, tool in enumerate(info.function_tools[:MAX_PARALLEL_CALLS])
        ]
    if isinstance(last, ModelRequest):
        results = [p for p in last.parts if isinstance(p, ToolReturnPart | RetryPromptPart)]
        if results:
            found = "\n".join(f"{p.tool_name}: {_short(p.content)}" for p in results)
            return f"Here is what I found. {found}"
    return f"You said: {user_text or ''}".strip()


def _directory_searches(info: AgentInfo, user_text: str) -> list[ToolCallPart]:
    """With ``search_directory`` available, search every directory the tool offers at once
    (parallel tool calls) for the user's words."""
    tool = next((t for t in info.function_tools if t.name == "search_directory"), None)
    if tool is None:
        return []
    schema = tool.parameters_json_schema.get("properties", {}).get("schema", {})
    names = schema.get("enum") or []
    return [
        ToolCallPart(
            "search_directory",
            {"schema": name, "query": user_text, "limit": 3},
            tool_call_id=f"demo_search_{index}",
        )
        for index, name in enumerate(names[:MAX_PARALLEL_CALLS])
    ]


def _short(content: object) -> str:
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    return text if len(text) <= SHORT_LIMIT else text[: SHORT_LIMIT - 3] + "..."


async def _respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    plan = _plan(messages, info)
    if isinstance(plan, str):
        return ModelResponse(parts=[TextPart(plan)], model_name="demo")
    return ModelResponse(parts=list(plan), model_name="demo")


async def _stream(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    plan = _plan(messages, info)
    if isinstance(plan, str):
        words = plan.split(" ")
        for index, word in enumerate(words):
            yield word if index == len(words) - 1 else word + " "
        return
    for index, call in enumerate(plan):
        yield {
            index: DeltaToolCall(
                name=call.tool_name, json_args=json.dumps(call.args), tool_call_id=call.tool_call_id
            )
        }
