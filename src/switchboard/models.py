"""Imports every ORM model so ``Base.metadata`` is complete (Alembic, tests)."""

from switchboard.conversations.models import Conversation, Message
from switchboard.db.base import Base
from switchboard.directory.models import DirectoryEntry, DirectoryNumber
from switchboard.ledger.models import LlmRequest, UsageDaily
from switchboard.memories.models import Memory
from switchboard.registry.models import Agent, AgentTag, ConfigLayer
from switchboard.runs.models import Run, RunEvent
from switchboard.tenancy.models import Account, ApiKey
from switchboard.traffic.models import Budget, BudgetPeriod

__all__ = [
    "Account",
    "Agent",
    "AgentTag",
    "ApiKey",
    "Base",
    "Budget",
    "BudgetPeriod",
    "ConfigLayer",
    "Conversation",
    "DirectoryEntry",
    "DirectoryNumber",
    "LlmRequest",
    "Memory",
    "Message",
    "Run",
    "RunEvent",
    "UsageDaily",
]
