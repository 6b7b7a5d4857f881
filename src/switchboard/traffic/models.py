from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint, Uuid
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
