from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Header
from pydantic import BaseModel, Field, StringConstraints

from switchboard.runs.schemas import OnDisconnect, Strategy
from switchboard.schemas import SafeStr, StrictModel

# RFC 9110 token characters, as the IETF Idempotency-Key draft's examples use (UUIDs, …).
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[!-~]+$",
        description="Same key + same body: the same run, replayed (Idempotent-Replayed: true); "
        "same key + another body: 422 IDEMPOTENCY_KEY_REUSED. Kept 24 h by default.",
    ),
]


class ChatIn(StrictModel):
    message: Annotated[SafeStr, StringConstraints(min_length=1, max_length=100_000)]
    conversation_id: uuid.UUID | Literal["default"] | None = Field(
        default=None,
        description="Continue a conversation (created if new); 'default' for this user's "
        "default conversation with the agent; omit for a new conversation.",
    )
    user: Annotated[SafeStr, StringConstraints(min_length=1, max_length=200)] | None = None
    stream: bool = False


class RunIn(ChatIn):
    background: bool = Field(
        default=False, description="Answer 202 at once; the run continues in the server"
    )
    multitask_strategy: Strategy = Field(
        default="enqueue",
        description="When the conversation has an active run: enqueue behind it, reject "
        "(409 CONVERSATION_BUSY), interrupt it, or roll it back (interrupt, and leave its "
        "messages out of later history)",
    )
    on_disconnect: OnDisconnect | None = Field(
        default=None,
        description="What a client going away does to the run: cancel it, or let it continue "
        "(the default; background runs always continue)",
    )


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int
    cached_tokens: int = Field(default=0, description="Of the input tokens, read from cache")


class ChatOut(BaseModel):
    conversation_id: uuid.UUID
    run_id: uuid.UUID | None = None
    reply: str
    llm_request_ids: list[uuid.UUID]
    usage: Usage
    cost_usd: str = Field(description="Exact decimal string, USD")
