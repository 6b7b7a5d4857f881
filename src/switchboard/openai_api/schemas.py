"""The body of ``POST /v1/chat/completions`` as far as an agent can honour it. Unknown fields are
refused (as OpenAI does: "Unrecognized request argument"); fields an agent cannot honour are
listed so the refusal names them instead of ignoring them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from switchboard.schemas import SafeStr

MAX_MESSAGES = 10_000
Text = Annotated[SafeStr, StringConstraints(max_length=1_000_000)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Open):
    type: Literal["text"]
    text: Text


class OtherPart(BaseModel):
    """Images, audio, files: read only to be refused by name."""

    model_config = ConfigDict(extra="allow")
    type: Annotated[SafeStr, StringConstraints(max_length=64)]


Content = Text | list[TextPart | OtherPart] | None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, refusal, audio …: checked by the router

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Content = None
    tool_calls: list[Any] | None = None
    function_call: Any | None = None


class StreamOptions(_Open):
    include_usage: bool = False
    include_obfuscation: bool | None = None


Metadata = dict[
    Annotated[SafeStr, StringConstraints(max_length=64)],
    Annotated[SafeStr, StringConstraints(max_length=512)],
]

# Accepted and honoured only at their default: anything else is refused by name.
UNSUPPORTED: dict[str, Any] = {
    "tools": None,
    "functions": None,
    "tool_choice": (None, "none", "auto"),
    "function_call": (None, "none", "auto"),
    "logprobs": (None, False),
    "top_logprobs": None,
    "logit_bias": None,
    "audio": None,
    "prediction": None,
    "web_search_options": None,
    "seed": None,
    "stop": None,
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "reasoning_effort": None,
    "verbosity": None,
}


class ChatCompletionIn(_Open):
    model: Annotated[SafeStr, StringConstraints(min_length=1, max_length=129)] = Field(
        description="The agent's slug (with the admin key: 'account/agent')"
    )
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    user: Annotated[SafeStr, StringConstraints(min_length=1, max_length=200)] | None = None
    metadata: Metadata | None = Field(
        default=None,
        description="conversation_id: continue a stored conversation (stateful); "
        "multitask_strategy: enqueue (default), reject, interrupt or rollback",
        max_length=16,
    )
    store: bool | None = None
    parallel_tool_calls: bool | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    response_format: dict[str, Any] | None = None
    service_tier: SafeStr | None = None
    safety_identifier: SafeStr | None = None
    prompt_cache_key: SafeStr | None = None
    prompt_cache_retention: SafeStr | None = None
    # Refused unless at their default (see UNSUPPORTED).
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    tool_choice: Any | None = None
    function_call: Any | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, Any] | None = None
    audio: Any | None = None
    prediction: Any | None = None
    web_search_options: Any | None = None
    seed: int | None = None
    stop: Any | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    reasoning_effort: Any | None = None
    verbosity: Any | None = None
