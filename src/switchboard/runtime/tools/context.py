"""What a tool receives. Never a session: a tool opens its own unit of work through services,
because tool calls of one model response run as concurrent tasks. A leaf of the runtime: only
the tools import it, and it imports only services and the core (no cycle to hide behind
``TYPE_CHECKING``)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from switchboard.config.directories import DirectoryConfig
from switchboard.db.uow import AccountScope, UnitOfWorkFactory
from switchboard.directory.service import DirectoryService
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
    directories: DirectoryService
    directory_schemas: Mapping[str, DirectoryConfig] = field(default_factory=dict)
