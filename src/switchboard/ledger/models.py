from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, Index, Integer, PrimaryKeyConstraint, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db.base import Base, JSONValue, UTCDateTime, utcnow
from switchboard.ledger.rollup import KEY_COLUMNS

LEDGER_STATUSES = ("pending", "complete", "error", "cancelled", "interrupted")
# reported: the provider's final usage; partial: what the provider reported before the call
# ended early (continuous usage); estimated: the provider reported nothing (ledger/estimate.py).
USAGE_SOURCES = ("reported", "partial", "estimated")


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
        Index("ix_llm_requests_status_owner_id", "status", "owner_id"),
        Index("ix_llm_requests_account_id_run_id", "account_id", "run_id"),
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
    # The process (its lease) that made the call; its pending rows are swept when it dies.
    owner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    usage_source: Mapped[str] = mapped_column(String(10), default="estimated")
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_nano_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    priced: Mapped[bool] = mapped_column(Boolean, default=True)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    provider_response_id: Mapped[str | None] = mapped_column(String(200))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_class: Mapped[str | None] = mapped_column(String(20))
    # The budget reservation this call holds (released by its settlement or by the sweeper).
    budget_hold_nano_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    budget_period_ids: Mapped[Any | None] = mapped_column(JSONValue)
    request_body: Mapped[Any | None] = mapped_column(JSONValue)
    response_body: Mapped[Any | None] = mapped_column(JSONValue)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ProcessLease(Base):
    """A server (or CLI) process that makes provider calls: renewed every heartbeat. A pending
    ledger row whose owner's lease has expired belongs to a dead process."""

    __tablename__ = "process_leases"

    owner_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class UsageDaily(Base):
    """The per-day rollup of the final ledger rows (:mod:`switchboard.ledger.rollup`): one row
    per (account, UTC day, agent, provider, model, status, error class), changed in the unit of
    work that changes the ledger rows it sums. The key is the primary key (unique); its order
    serves one account's date range, ``ix_usage_daily_day`` every account's."""

    __tablename__ = "usage_daily"
    __table_args__ = (
        PrimaryKeyConstraint(*KEY_COLUMNS, name="pk_usage_daily"),
        Index("ix_usage_daily_day", "day"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    day: Mapped[date] = mapped_column(Date)
    agent_slug: Mapped[str] = mapped_column(String(64))  # '' when the row had none
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    error_class: Mapped[str] = mapped_column(String(20))  # '' when none
    account_slug: Mapped[str] = mapped_column(String(64))
    requests: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cached_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_nano_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    unpriced_requests: Mapped[int] = mapped_column(Integer, default=0)
    estimated_requests: Mapped[int] = mapped_column(Integer, default=0)
    estimated_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    estimated_output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    estimated_cost_nano_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_count: Mapped[int] = mapped_column(Integer, default=0)
    latency_sum_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    # The histogram (rollup.LATENCY_COLUMNS, in order; a test holds them equal): calls over the
    # previous bound, up to this one.
    latency_le_50: Mapped[int] = mapped_column(Integer, default=0)
    latency_le_100: Mapped[int] = mapped_column(Integer, default=0)
    latency_le_250: Mapped[int] = mapped_column(Integer, default=0)
    latency_le_500: Mapped[int] = mapped_column(Integer, default=0)
    latency_le_1000: Mapped[int] = mapped_column(Integer, default=0)
    latency_le_2500: Mapped[int] = mapped_column(Integer, default=0)
    latency_le_5000: Mapped[int] = mapped_column(Integer, default=0)
    latency_le_10000: Mapped[int] = mapped_column(Integer, default=0)
    latency_le_30000: Mapped[int] = mapped_column(Integer, default=0)
    latency_le_60000: Mapped[int] = mapped_column(Integer, default=0)
    latency_gt_60000: Mapped[int] = mapped_column(Integer, default=0)
