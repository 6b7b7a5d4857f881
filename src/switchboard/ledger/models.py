from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db.base import Base, JSONValue, UTCDateTime, utcnow

LEDGER_STATUSES = ("pending", "complete", "error", "cancelled", "interrupted")


class LlmRequest(Base):
    """One row per provider call, committed as ``pending`` before the call leaves the process and
    finalised by one conditional update afterwards. Never deleted. No foreign keys: the ledger
    outlives agents and conversations, so account and agent are denormalised here."""

    __tablename__ = "llm_requests"
    __table_args__ = (
        Index("ix_llm_requests_account_id_created_at", "account_id", "created_at", "id"),
        Index(
            "ix_llm_requests_account_id_conversation_id_created_at",
            "account_id",
            "conversation_id",
            "created_at",
        ),
        Index(
            "ix_llm_requests_account_id_agent_slug_created_at",
            "account_id",
            "agent_slug",
            "created_at",
        ),
        Index("ix_llm_requests_account_id_status_created_at", "account_id", "status", "created_at"),
        Index("ix_llm_requests_status_deadline_at", "status", "deadline_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    account_slug: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    agent_slug: Mapped[str | None] = mapped_column(String(64))
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(20))  # chat | summary | discussion
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_nano_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    priced: Mapped[bool] = mapped_column(Boolean, default=True)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    provider_response_id: Mapped[str | None] = mapped_column(String(200))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_class: Mapped[str | None] = mapped_column(String(20))
    request_body: Mapped[Any | None] = mapped_column(JSONValue)
    response_body: Mapped[Any | None] = mapped_column(JSONValue)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
