"""A Chat Completions request as a run: the client's messages checked (what an agent cannot
honour is refused by name), the history before the last user message handed to the run as the
client's copy, and the model settings the agent lets a client set."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, get_args

from switchboard.config.schema import EffectiveConfig
from switchboard.conversations.schemas import NewMessage
from switchboard.openai_api.errors import unsupported
from switchboard.openai_api.schemas import (
    UNSUPPORTED,
    ChatCompletionIn,
    ChatMessage,
    OtherPart,
)
from switchboard.runs.schemas import Strategy
from switchboard.runtime.chat import assistant_message, user_message
from switchboard.runtime.runs import RunRequest

# The blocks Open WebUI renders for tool calls (what tool_calls="details" sends): a client
# sending them back in its history must not teach the model to imitate them.
_DETAILS = re.compile(r'<details type="tool_calls"[^>]*>.*?</details>\s*', re.DOTALL)
_STRATEGIES = get_args(Strategy)
CONVERSATION_HEADER = "X-Switchboard-Conversation-Id"


def strip_tool_blocks(text: str) -> str:
    return _DETAILS.sub("", text)


def _text(message: ChatMessage, index: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if isinstance(part, OtherPart):
            raise unsupported(
                f"messages[{index}].content",
                f"content parts of type '{part.type}' are not supported: agents take text",
            )
        texts.append(part.text)
    return "\n".join(texts)


def _check_unsupported(body: ChatCompletionIn) -> None:
    if body.n not in (None, 1):
        raise unsupported("n", "n > 1 is not supported: an agent's turn has one answer")
    for name, allowed in UNSUPPORTED.items():
        value = getattr(body, name)
        ok = value in allowed if isinstance(allowed, tuple) else value is allowed
        if not ok:
            why = (
                "client-side tools are not supported: the agent runs its own tools on the server"
                if name in ("tools", "functions", "tool_choice", "function_call")
                else f"'{name}' is not supported by agents"
            )
            raise unsupported(name, why)
    if body.modalities not in (None, ["text"]):
        raise unsupported("modalities", "agents answer in text only")
    if body.response_format not in (None, {"type": "text"}):
        raise unsupported("response_format", "agents answer in free text only")


def allowed_settings(
    wanted: dict[str, Any], config: EffectiveConfig, *, params: dict[str, str] | None = None
) -> tuple[tuple[str, Any], ...]:
    """The sampling settings a request sets, refused unless the agent allows each one
    (``openai.overrides``); ``params`` names a setting's request field where they differ."""
    allowed = set(config.openai.overrides)
    for name in wanted:
        if name not in allowed:
            raise unsupported(
                (params or {}).get(name, name),
                f"this agent does not let requests set '{name}' (its config: openai.overrides)",
            )
    return tuple(sorted(wanted.items()))


def _settings(body: ChatCompletionIn, config: EffectiveConfig) -> tuple[tuple[str, Any], ...]:
    wanted: dict[str, Any] = {}
    if body.temperature is not None:
        wanted["temperature"] = body.temperature
    if body.top_p is not None:
        wanted["top_p"] = body.top_p
    max_tokens = body.max_completion_tokens or body.max_tokens
    if max_tokens is not None:
        wanted["max_tokens"] = max_tokens
    field = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
    return allowed_settings(wanted, config, params={"max_tokens": field})


def strategy_of(metadata: dict[str, str] | None) -> str:
    """``metadata.multitask_strategy``: what a run does when its conversation is busy."""
    strategy = (metadata or {}).get("multitask_strategy", "enqueue")
    if strategy not in _STRATEGIES:
        raise unsupported(
            "metadata.multitask_strategy",
            f"multitask_strategy must be one of {', '.join(_STRATEGIES)}",
        )
    return strategy


@dataclass(frozen=True, slots=True)
class Conversation:
    ref: uuid.UUID | None
    strategy: str


def conversation_of(body: ChatCompletionIn, header: str | None) -> Conversation:
    metadata = body.metadata or {}
    named = header or metadata.get("conversation_id")
    ref = None
    if named is not None:
        try:
            ref = uuid.UUID(named)
        except ValueError:
            raise unsupported(
                "metadata.conversation_id", "conversation_id must be a conversation's UUID"
            ) from None
    return Conversation(ref, strategy_of(metadata))


def run_request(
    body: ChatCompletionIn,
    config: EffectiveConfig,
    conversation: Conversation,
    *,
    keyed: bool,
) -> RunRequest:
    """The run a request asks for: the last message (a user's) is the run's message, the ones
    before it the client's copy of the history (system and developer messages are left out:
    the agent's prompt is its configuration's). A client that goes away cancels its run —
    unless it sent an Idempotency-Key (``keyed``): then it will come back for the answer (an
    SDK's retry after a timeout) and the run continues."""
    _check_unsupported(body)
    *earlier, last = body.messages
    if last.role != "user":
        raise unsupported(f"messages[{len(earlier)}].role", "the last message must be the user's")
    message = _text(last, len(earlier))
    if not message.strip():
        raise unsupported(f"messages[{len(earlier)}].content", "the user's message is empty")
    history: list[NewMessage] = []
    for index, item in enumerate(earlier):
        if item.role in ("tool", "function") or item.tool_calls or item.function_call:
            raise unsupported(
                f"messages[{index}]",
                "client-side tool calls are not supported: the agent runs its own tools",
            )
        if item.role == "user":
            history.append(user_message(_text(item, index)))
        elif item.role == "assistant":
            history.append(assistant_message(strip_tool_blocks(_text(item, index))))
    return RunRequest(
        message=message,
        conversation=conversation.ref,
        user=body.user,
        strategy=conversation.strategy,
        on_disconnect="continue" if keyed else "cancel",
        client=tuple(history),
        settings=_settings(body, config),
    )
