"""What a provider call sends and receives, as texts, for the ledger's token estimates
(:mod:`switchboard.ledger.estimate`) and the budget's worst case."""

from __future__ import annotations

import json
from collections.abc import Iterator

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models import ModelRequestParameters

from switchboard.ledger.estimate import estimate_parts


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, default=str)


def request_texts(
    messages: list[ModelMessage], parameters: ModelRequestParameters
) -> Iterator[str]:
    for message in messages:
        if isinstance(message, ModelRequest):
            if message.instructions:
                yield message.instructions
            for part in message.parts:
                if isinstance(part, ToolReturnPart):
                    yield part.model_response_str()
                elif isinstance(part, RetryPromptPart):
                    yield part.model_response()
                else:
                    yield _text(getattr(part, "content", None))
        else:
            yield from response_texts(message)
    for tool in parameters.function_tools:
        yield tool.name + " " + (tool.description or "") + json.dumps(tool.parameters_json_schema)


def response_texts(response: ModelResponse) -> Iterator[str]:
    for part in response.parts:
        if isinstance(part, ToolCallPart):
            yield part.tool_name + " " + part.args_as_json_str()
        else:
            yield _text(getattr(part, "content", None))


def estimate_request(messages: list[ModelMessage], parameters: ModelRequestParameters) -> int:
    return estimate_parts(request_texts(messages, parameters))


def estimate_response(response: ModelResponse) -> int:
    return estimate_parts(response_texts(response)) if response.parts else 0
