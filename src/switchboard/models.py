"""Imports every ORM model so ``Base.metadata`` is complete (Alembic, tests)."""

from switchboard.db.base import Base
from switchboard.registry.models import Agent, AgentTag, ConfigLayer
from switchboard.tenancy.models import Account, ApiKey

__all__ = ["Account", "Agent", "AgentTag", "ApiKey", "Base", "ConfigLayer"]
