from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from switchboard.money import nano_to_usd_str
from switchboard.runtime.events import Done
from switchboard.schemas import SafeStr, StrictModel


class ChatIn(StrictModel):
    message: Annotated[SafeStr, StringConstraints(min_length=1, max_length=100_000)]
    conversation_id: uuid.UUID | Literal["default"] | None = Field(
        default=None,
        description="Continue a conversation (created if new); 'default' for this user's "
        "default conversation with the agent; omit for a new conversation.",
    )
    user: Annotated[SafeStr, StringConstraints(min_length=1, max_length=200)] | None = None
    stream: bool = False


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class ChatOut(BaseModel):
    conversation_id: uuid.UUID
    reply: str
    llm_request_ids: list[uuid.UUID]
    usage: Usage
    cost_usd: str = Field(description="Exact decimal string, USD")

    @classmethod
    def of(cls, done: Done) -> ChatOut:
        return cls(
            conversation_id=done.conversation_id,
            reply=done.reply,
            llm_request_ids=done.llm_request_ids,
            usage=Usage(input_tokens=done.input_tokens, output_tokens=done.output_tokens),
            cost_usd=nano_to_usd_str(done.cost_nano_usd),
        )
