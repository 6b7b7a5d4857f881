from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append to a conversation (``data``: the Pydantic AI message, for replay)."""

    role: str
    content: str
    data: Any


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message of a conversation's history, as the turn replays it."""

    seq: int
    role: str
    content: str
    data: Any


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    agent_slug: str
    user: str | None
    summary: str | None
    created_at: datetime
    updated_at: datetime


class ConversationPage(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    role: str
    content: str
    data: Any
    run_id: uuid.UUID | None
    excluded: bool = False  # a rolled-back run's message: kept, never replayed to the model
    created_at: datetime


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None
