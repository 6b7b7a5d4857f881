"""What a chat turn emits, in order: text deltas, tool calls and results, then ``done``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from switchboard.conversations.schemas import NewMessage


@dataclass(frozen=True, slots=True)
class Delta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCalled:
    id: str
    name: str
    args: Any


@dataclass(frozen=True, slots=True)
class ToolReturned:
    id: str
    name: str
    content: str


@dataclass(frozen=True, slots=True)
class Done:
    conversation_id: uuid.UUID
    reply: str
    messages: tuple[NewMessage, ...] = ()  # the turn's new messages, for the run to store
    llm_request_ids: list[uuid.UUID] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_nano_usd: int = 0


ChatEvent = Delta | ToolCalled | ToolReturned | Done
