"""What a tool receives. Never a session: a tool opens its own unit of work through services,
because tool calls of one model response run as concurrent tasks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from switchboard.db.uow import AccountScope, UnitOfWorkFactory
from switchboard.memories.service import MemoryService


@dataclass(frozen=True, slots=True)
class ToolContext:
    uow: UnitOfWorkFactory
    account: AccountScope
    agent_id: uuid.UUID
    agent_slug: str
    conversation_id: uuid.UUID
    run_id: uuid.UUID
    memories: MemoryService
