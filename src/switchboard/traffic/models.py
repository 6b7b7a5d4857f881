from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from switchboard.db.base import Base, UTCDateTime, utcnow


class Budget(Base):
    """A spend limit per period for an account (``agent_slug = ''``) or one of its agents."""

    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("account_id", "agent_slug"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("accounts.id", ondelete="CASCADE")
    )
    agent_slug: Mapped[str] = mapped_column(String(64), default="")
    period: Mapped[str] = mapped_column(String(10))  # day | month
    limit_nano_usd: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BudgetPeriod(Base):
    """Spent and reserved money of one budget in one period (``2026-11-23`` or ``2026-11``)."""

    __tablename__ = "budget_periods"
    __table_args__ = (UniqueConstraint("budget_id", "period_start"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    budget_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("budgets.id", ondelete="CASCADE"))
    period_start: Mapped[str] = mapped_column(String(10))
    spent_nano_usd: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_nano_usd: Mapped[int] = mapped_column(BigInteger, default=0)


class LimiterSlot(Base):
    """A provider concurrency slot held by one call of some process (:mod:`.db_limiter`): a
    lease renewed while the call runs; a slot whose ``expires_at`` has passed belongs to a
    process that died and is taken back by the next acquire of its key. Not tenant-owned: the
    key is a provider's limiter key, shared by every account that uses the provider."""

    __tablename__ = "limiter_slots"
    __table_args__ = (PrimaryKeyConstraint("key", "member", name="pk_limiter_slots"),)

    key: Mapped[str] = mapped_column(String(512))
    member: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(255))  # host:pid, for diagnostics
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LimiterHit(Base):
    """One admitted call under a key's rpm/tpm limits, kept for the 60-second window: rpm is the
    count of a key's hits in the window, tpm the sum of their tokens. The primary key's order
    (key, time) serves the window's delete, count and sum. Not tenant-owned."""

    __tablename__ = "limiter_hits"
    __table_args__ = (PrimaryKeyConstraint("key", "at", "member", name="pk_limiter_hits"),)

    key: Mapped[str] = mapped_column(String(512))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    member: Mapped[str] = mapped_column(String(32))
    tokens: Mapped[int] = mapped_column(Integer)
