from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db.base import Base, JSONValue, UTCDateTime, utcnow

ROLES = ("user", "assistant", "tool_call", "tool_result")


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_account_id_created_at", "account_id", "created_at", "id"),
        Index(
            "ix_conversations_account_id_agent_slug_created_at",
            "account_id",
            "agent_slug",
            "created_at",
            "id",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("accounts.id", ondelete="CASCADE")
    )
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    agent_slug: Mapped[str] = mapped_column(String(64))
    user: Mapped[str | None] = mapped_column(String(200))
    # "<agent id>:<user>" for an agent's default conversation with a user; UNIQUE, so creating
    # it twice at once yields one row.
    default_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    summary: Mapped[str | None] = mapped_column(Text)
    summary_upto_seq: Mapped[int] = mapped_column(Integer, default=0)
    next_seq: Mapped[int] = mapped_column(Integer, default=1)
    next_run_seq: Mapped[int] = mapped_column(Integer, default=1)  # runs queue in this order
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE")
    )
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(20))
    content: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[Any] = mapped_column(JSONValue)  # the Pydantic AI message, for replay
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    # A rolled-back run's messages: kept for audit, never replayed to the model again.
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
