from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db.base import Base, JSONValue, UTCDateTime, utcnow
from switchboard.runs.schemas import ACTIVE_STATUSES, TERMINAL_STATUSES

__all__ = ["ACTIVE_STATUSES", "TERMINAL_STATUSES", "Run", "RunEvent"]

RUN_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled", "interrupted")
STRATEGIES = ("enqueue", "reject", "interrupt", "rollback")
ON_DISCONNECT = ("cancel", "continue")
# Why a running run was asked to stop: a client's cancel, or a later run's interrupt/rollback.
STOP_REASONS = ("cancel", "interrupt", "rollback")

RUNNING_ONLY = text("status = 'running'")


class Run(Base):
    """One turn of a conversation. Moves ``pending → running → succeeded | failed | cancelled |
    interrupted``, each step one conditional update. At most one ``running`` run per
    conversation (a unique partial index); pending runs start in ``queue_seq`` order."""

    __tablename__ = "runs"
    __table_args__ = (
        # Idempotency-Key: two requests with one key create one run — the database decides.
        UniqueConstraint("account_id", "idempotency_key"),
        UniqueConstraint("conversation_id", "queue_seq"),
        Index(
            "ux_runs_running_conversation_id",
            "conversation_id",
            unique=True,
            sqlite_where=RUNNING_ONLY,
            postgresql_where=RUNNING_ONLY,
        ),
        Index("ix_runs_status_owner_id", "status", "owner_id"),
        Index(
            "ix_runs_account_id_conversation_id_created_at",
            "account_id",
            "conversation_id",
            "created_at",
            "id",
        ),
        Index("ix_runs_idempotency_expires_at", "idempotency_expires_at"),
        Index("ix_runs_account_id_created_at", "account_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("accounts.id", ondelete="CASCADE")
    )
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    agent_slug: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    queue_seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    multitask_strategy: Mapped[str] = mapped_column(String(20))
    on_disconnect: Mapped[str] = mapped_column(String(20))
    background: Mapped[bool] = mapped_column(Boolean, default=False)
    request: Mapped[Any] = mapped_column(JSONValue)  # message, user, conversation as given
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the request
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    idempotency_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the process (lease) running it
    stop_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stop_reason: Mapped[str | None] = mapped_column(String(20))
    last_event_seq: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_class: Mapped[str | None] = mapped_column(String(20))
    error_message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[Any | None] = mapped_column(JSONValue)  # reply, usage, cost, ledger ids
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RunEvent(Base):
    """Everything a client watching a run can see, in order: stored with the next ``seq``
    before it is sent, so a client that reconnects gets exactly what it missed."""

    __tablename__ = "run_events"

    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[Any] = mapped_column(JSONValue)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
