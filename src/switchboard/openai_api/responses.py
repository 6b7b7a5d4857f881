"""The Responses API over runs: ``resp_`` + the run id; ``input`` as text or message items;
``previous_response_id`` and ``conversation`` map to stored conversations (continuing from an
older response forks); server-run tools appear as ``mcp_call`` output items. Streams are
rendered from the run's stored events, so a client resumes with ``starting_after`` and gets
exactly the events it missed."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sse_starlette import ServerSentEvent

from switchboard.config.schema import EffectiveConfig
from switchboard.conversations.schemas import NewMessage
from switchboard.errors import InvalidRequest, NotFound
from switchboard.openai_api.errors import unsupported
from switchboard.openai_api.history import allowed_settings, strip_tool_blocks
from switchboard.openai_api.render import vendor
from switchboard.runs.schemas import EventView, RunView
from switchboard.runtime.chat import assistant_message, user_message
from switchboard.runtime.delivery import stopped_error
from switchboard.schemas import SafeStr

PREFIX = "resp_"
SERVER_LABEL = "switchboard"
_STATUS = {
    "pending": "queued",
    "running": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
    "interrupted": "failed",
}
Text = Annotated[SafeStr, StringConstraints(max_length=1_000_000)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputText(_Closed):
    type: Literal["input_text", "output_text"]
    text: Text
    annotations: list[Any] | None = None


class InputMessage(_Closed):
    type: Literal["message"] | None = None
    id: SafeStr | None = None
    status: SafeStr | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: Text | list[InputText]


class ResponseIn(_Closed):
    model: Annotated[SafeStr, StringConstraints(min_length=1, max_length=129)]
    input: Text | list[InputMessage] = Field(min_length=1)
    previous_response_id: Annotated[SafeStr, StringConstraints(max_length=64)] | None = None
    conversation: Annotated[SafeStr, StringConstraints(max_length=64)] | dict[str, Any] | None = (
        None
    )
    instructions: Text | None = None
    store: bool | None = None
    background: bool | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    metadata: (
        dict[
            Annotated[SafeStr, StringConstraints(max_length=64)],
            Annotated[SafeStr, StringConstraints(max_length=512)],
        ]
        | None
    ) = Field(default=None, max_length=16)
    max_output_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    user: Annotated[SafeStr, StringConstraints(min_length=1, max_length=200)] | None = None
    safety_identifier: SafeStr | None = None
    prompt_cache_key: SafeStr | None = None
    service_tier: SafeStr | None = None
    parallel_tool_calls: bool | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[SafeStr] | None = None
    # Refused unless at their default.
    tools: list[Any] | None = None
    tool_choice: Any | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    max_tool_calls: int | None = None
    top_logprobs: int | None = None


def response_id(run_id: uuid.UUID) -> str:
    return f"{PREFIX}{run_id.hex}"


def run_id_of(value: str, param: str = "response_id") -> uuid.UUID:
    if value.startswith(PREFIX):
        try:
            return uuid.UUID(hex=value.removeprefix(PREFIX))
        except ValueError:
            pass
    raise NotFound(
        f"response '{value}' not found", code="RESPONSE_NOT_FOUND", details={"param": param}
    )


def _text(content: str | list[InputText]) -> str:
    return content if isinstance(content, str) else "\n".join(p.text for p in content)


@dataclass(frozen=True, slots=True)
class Asked:
    """What a Responses request asks of a run."""

    message: str
    history: tuple[NewMessage, ...]  # earlier input items (a stateless request's history)


def asked(body: ResponseIn) -> Asked:
    if body.tools:
        raise unsupported("tools", "client-side tools are not supported: the agent runs its own")
    if body.tool_choice not in (None, "auto", "none"):
        raise unsupported("tool_choice", "client-side tools are not supported")
    if body.text not in (None, {"format": {"type": "text"}}):
        raise unsupported("text", "agents answer in free text only")
    for name in ("reasoning", "max_tool_calls", "top_logprobs"):
        if getattr(body, name) is not None:
            raise unsupported(name, f"'{name}' is not supported by agents")
    if body.store is False:
        raise unsupported("store", "every run is stored: it is billed and can be read back")
    items = (
        [InputMessage(role="user", content=body.input)]
        if isinstance(body.input, str)
        else body.input
    )
    spoken = [i for i in items if i.role in ("user", "assistant")]
    if not spoken or spoken[-1].role != "user":
        raise unsupported("input", "the last input message must be the user's")
    *earlier, last = spoken
    message = _text(last.content)
    if not message.strip():
        raise unsupported("input", "the user's message is empty")
    continuing = body.previous_response_id is not None or body.conversation is not None
    if continuing and earlier:
        raise unsupported(
            "input",
            "with previous_response_id or conversation, send only the new user message",
        )
    history = tuple(
        user_message(_text(i.content))
        if i.role == "user"
        else assistant_message(strip_tool_blocks(_text(i.content)))
        for i in earlier
    )
    return Asked(message, history)


def conversation_ref(body: ResponseIn) -> uuid.UUID | None:
    named = body.conversation
    if named is None:
        return None
    if body.previous_response_id is not None:
        raise InvalidRequest(
            "send previous_response_id or conversation, not both",
            code="UNSUPPORTED_PARAMETER",
            details={"param": "conversation"},
        )
    value = named.get("id") if isinstance(named, dict) else named
    try:
        return uuid.UUID(str(value).removeprefix("conv_"))
    except ValueError:
        raise unsupported("conversation", "conversation must be a conversation's id") from None


def settings_of(body: ResponseIn, config: EffectiveConfig) -> tuple[tuple[str, Any], ...]:
    """The sampling settings the request sets, each one the agent allows."""
    wanted: dict[str, Any] = {}
    if body.temperature is not None:
        wanted["temperature"] = body.temperature
    if body.top_p is not None:
        wanted["top_p"] = body.top_p
    if body.max_output_tokens is not None:
        wanted["max_tokens"] = body.max_output_tokens
    return allowed_settings(wanted, config, params={"max_tokens": "max_output_tokens"})


def _usage(result: dict[str, Any] | None) -> dict[str, Any] | None:
    if not result:
        return None
    usage = result["usage"]
    return {
        "input_tokens": usage["input_tokens"],
        "input_tokens_details": {"cached_tokens": usage.get("cached_tokens", 0)},
        "output_tokens": usage["output_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage["input_tokens"] + usage["output_tokens"],
    }


def _error(run: RunView) -> dict[str, str] | None:
    if run.status in ("pending", "running", "succeeded"):
        return None
    return {
        "code": (run.error_code or f"RUN_{run.status.upper()}").lower(),
        "message": run.error_message or f"the run was {run.status}",
    }


@dataclass(slots=True)
class Rendering:
    """A run's stored events as Responses stream events, numbered from 0; the same events
    always render the same way, so ``starting_after`` resumes exactly."""

    run: RunView
    model: str
    previous: str | None
    forked_from: uuid.UUID | None = None
    output: list[dict[str, Any]] = field(default_factory=list)
    _calls: dict[str, int] = field(default_factory=dict)
    _message: int | None = None
    _text: str = ""
    _seq: int = -1

    def response(self, status: str | None = None, **extra: Any) -> dict[str, Any]:
        run = self.run
        return {
            "id": response_id(run.id),
            "object": "response",
            "created_at": int(run.created_at.timestamp()) if run.created_at else 0,
            "model": self.model,
            "status": status or _STATUS[run.status],
            "output": self.output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "background": run.background,
            "store": True,
            "previous_response_id": self.previous,
            "conversation": {"id": str(run.conversation_id)},
            "error": _error(run),
            "usage": _usage(run.result),
            "metadata": {},
            "switchboard": vendor(run.id, run.conversation_id, self.forked_from, run.result),
            **extra,
        }

    def _event(self, kind: str, **data: Any) -> dict[str, Any]:
        self._seq += 1
        return {"type": kind, "sequence_number": self._seq, **data}

    def _open_message(self) -> list[dict[str, Any]]:
        item = {
            "id": f"msg_{self.run.id.hex}",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        self.output.append(item)
        self._message = len(self.output) - 1
        part = {"type": "output_text", "text": "", "annotations": []}
        return [
            self._event("response.output_item.added", output_index=self._message, item=item),
            self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=self._message,
                content_index=0,
                part=part,
            ),
        ]

    def _close_message(self, text: str) -> list[dict[str, Any]]:
        events = self._open_message() if self._message is None else []
        index = self._message
        assert index is not None
        item = self.output[index]
        part = {"type": "output_text", "text": text, "annotations": []}
        item["content"] = [part]
        item["status"] = "completed"
        ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
        return [
            *events,
            self._event("response.output_text.done", text=text, logprobs=[], **ids),
            self._event("response.content_part.done", part=part, **ids),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def step(self, event: EventView) -> list[dict[str, Any]]:
        data = event.data
        if event.type == "created":
            return [
                self._event("response.created", response=self.response("queued")),
            ]
        if event.type == "started":
            return [self._event("response.in_progress", response=self.response("in_progress"))]
        if event.type == "tool_call":
            item = {
                "id": f"mcp_{data['id']}",
                "type": "mcp_call",
                "server_label": SERVER_LABEL,
                "name": data["name"],
                "arguments": json.dumps(data.get("args"), ensure_ascii=False, default=str),
                "status": "calling",
            }
            self.output.append(item)
            self._calls[data["id"]] = len(self.output) - 1
            return [
                self._event(
                    "response.output_item.added", output_index=len(self.output) - 1, item=item
                )
            ]
        if event.type == "tool_result" and data["id"] in self._calls:
            index = self._calls.pop(data["id"])
            item = self.output[index]
            item["output"] = data["content"]
            item["status"] = "completed"
            return [self._event("response.output_item.done", output_index=index, item=item)]
        if event.type == "delta":
            events = self._open_message() if self._message is None else []
            self._text += data["text"]
            item_id = self.output[self._message or 0]["id"]
            return [
                *events,
                self._event(
                    "response.output_text.delta",
                    item_id=item_id,
                    output_index=self._message,
                    content_index=0,
                    delta=data["text"],
                    logprobs=[],
                ),
            ]
        if event.type == "done":
            self.run = self.run.ended(status="succeeded", result=_result_of(data))
            return [
                *self._close_message(data["reply"]),
                self._event("response.completed", response=self.response()),
            ]
        if event.type in ("error", "cancelled", "interrupted"):
            status = {"error": "failed", "cancelled": "cancelled", "interrupted": "interrupted"}
            error = stopped_error(event)
            self.run = self.run.ended(
                status=status[event.type], error_code=error.code, error_message=error.message
            )
            return [self._event("response.failed", response=self.response())]
        return []


def _result_of(done: dict[str, Any]) -> dict[str, Any]:
    return {k: done[k] for k in ("reply", "llm_request_ids", "usage", "cost_usd")}


async def stream(
    rendering: Rendering, followed: AsyncIterator[EventView], *, after: int
) -> AsyncIterator[ServerSentEvent]:
    async for event in followed:
        for out in rendering.step(event):
            if out["sequence_number"] > after:
                yield ServerSentEvent(json.dumps(out, ensure_ascii=False), event=out["type"])


async def snapshot(rendering: Rendering, events: AsyncIterator[EventView]) -> dict[str, Any]:
    """The response as stored now (its output items rebuilt from the run's events; the run as
    read wins over what the events say of its status)."""
    final = rendering.run
    async for event in events:
        rendering.step(event)
    rendering.run = final
    return rendering.response()
