from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from switchboard.db.base import Base, JSONValue, UTCDateTime, new_id, utcnow


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (
        UniqueConstraint("account_id", "slug"),
        Index("ix_agents_account_id_team_slug", "account_id", "team", "slug"),
        Index("ix_agents_account_id_enabled_slug", "account_id", "enabled", "slug"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("accounts.id", ondelete="CASCADE")
    )
    slug: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    system_prompt: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))
    tools: Mapped[list[str] | None] = mapped_column(JSONValue)
    capabilities: Mapped[list[str]] = mapped_column(JSONValue, default=list)
    team: Mapped[str | None] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tag_rows: Mapped[list[AgentTag]] = relationship(
        lazy="selectin", order_by="AgentTag.tag", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def tags(self) -> list[str]:
        return [row.tag for row in self.tag_rows]


class AgentTag(Base):
    """One row per (agent, tag), so filtering agents by tag is an index lookup."""

    __tablename__ = "agent_tags"
    __table_args__ = (
        Index("ix_agent_tags_account_id_tag_agent_id", "account_id", "tag", "agent_id"),
    )

    agent_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("accounts.id", ondelete="CASCADE")
    )


class ConfigLayer(Base):
    """One file of the config tree as last applied (``switchboard apply``). The server reads the
    cascade from here, never from disk, so every process and machine sees the same config."""

    __tablename__ = "config_layers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(100), unique=True)  # global | account:<id> | agent:<id>
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(500))
    data: Mapped[dict[str, Any]] = mapped_column(JSONValue, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def layer_key(*, account_id: uuid.UUID | None = None, agent_id: uuid.UUID | None = None) -> str:
    if agent_id is not None:
        return f"agent:{agent_id}"
    if account_id is not None:
        return f"account:{account_id}"
    return "global"
