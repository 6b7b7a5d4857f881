"""Budgets: the database is the source of truth. A reservation of a call's maximum possible
cost is one conditional update (``… WHERE spent + reserved + :amount <= limit``), so concurrent
calls can never overspend; settlement moves the reservation to ``spent`` at the actual cost.
Both run inside the unit of work that opens or settles the call's ledger row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select, update

from switchboard.db.base import utcnow
from switchboard.db.uow import AccountScope, UnitOfWork, UnitOfWorkFactory
from switchboard.db.upsert import dialect_insert
from switchboard.errors import BudgetExceeded, NotFound
from switchboard.ledger.pricing import nano_to_usd_str
from switchboard.traffic.models import Budget, BudgetPeriod

Period = Literal["day", "month"]


def period_start(period: str, now: datetime | None = None) -> str:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


@dataclass(frozen=True, slots=True)
class Reservation:
    period_ids: tuple[uuid.UUID, ...]
    amount_nano_usd: int


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    agent: str | None
    period: str
    period_start: str
    limit_nano_usd: int
    spent_nano_usd: int
    reserved_nano_usd: int

    @property
    def remaining_nano_usd(self) -> int:
        return max(self.limit_nano_usd - self.spent_nano_usd - self.reserved_nano_usd, 0)


async def _reserve(u: UnitOfWork, budget: Budget, start: str, amount: int) -> uuid.UUID | None:
    """One conditional update: reserve only if spent + reserved + amount stays within the limit."""
    result = await u.session.execute(
        update(BudgetPeriod)
        .where(
            BudgetPeriod.budget_id == budget.id,
            BudgetPeriod.period_start == start,
            BudgetPeriod.spent_nano_usd + BudgetPeriod.reserved_nano_usd + amount
            <= budget.limit_nano_usd,
        )
        .values(reserved_nano_usd=BudgetPeriod.reserved_nano_usd + amount)
        .returning(BudgetPeriod.id)
    )
    return result.scalar_one_or_none()


class BudgetService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    @staticmethod
    async def reserve_in(
        u: UnitOfWork, *, agent: str | None, amount_nano_usd: int
    ) -> Reservation | None:
        """Reserve ``amount`` against every budget that applies (the account's and the
        agent's); raises :class:`BudgetExceeded`, and the unit of work rolls back, if any
        cannot afford it. ``None`` when no budget applies."""
        budgets = (
            (
                await u.session.execute(
                    select(Budget).where(
                        Budget.account_id == u.account.id, Budget.agent_slug.in_(["", agent or ""])
                    )
                )
            )
            .scalars()
            .all()
        )
        if not budgets:
            return None
        period_ids = []
        for budget in budgets:
            start = period_start(budget.period)
            period_id = await _reserve(u, budget, start, amount_nano_usd)
            if period_id is None:
                # Over the limit, or the first call of the period: create the period's row
                # if it is missing (a no-op otherwise, race-free), then try once more.
                await u.session.execute(
                    dialect_insert(u, BudgetPeriod)
                    .values(
                        id=uuid.uuid4(),
                        budget_id=budget.id,
                        period_start=start,
                        spent_nano_usd=0,
                        reserved_nano_usd=0,
                    )
                    .on_conflict_do_nothing(index_elements=["budget_id", "period_start"])
                )
                period_id = await _reserve(u, budget, start, amount_nano_usd)
            if period_id is None:
                whose = f"agent '{budget.agent_slug}'" if budget.agent_slug else "the account"
                raise BudgetExceeded(
                    f"the {budget.period}ly budget of {whose} "
                    f"({nano_to_usd_str(budget.limit_nano_usd)} USD) cannot cover this call "
                    f"(up to {nano_to_usd_str(amount_nano_usd)} USD)"
                )
            period_ids.append(period_id)
        return Reservation(tuple(period_ids), amount_nano_usd)

    @staticmethod
    async def settle_in(u: UnitOfWork, reservation: Reservation, *, actual_nano_usd: int) -> None:
        """Release the reservation and charge the actual cost (on errors and cancellations
        too: whatever the provider reported is spent)."""
        await u.session.execute(
            update(BudgetPeriod)
            .where(BudgetPeriod.id.in_(reservation.period_ids))
            .values(
                reserved_nano_usd=BudgetPeriod.reserved_nano_usd - reservation.amount_nano_usd,
                spent_nano_usd=BudgetPeriod.spent_nano_usd + actual_nano_usd,
            )
        )

    async def put(
        self, scope: AccountScope, *, agent: str | None, period: Period, limit_nano_usd: int
    ) -> BudgetStatus:
        async def op(u: UnitOfWork) -> None:
            await self.put_in(u, agent=agent, period=period, limit_nano_usd=limit_nano_usd)

        await self._uow.run(op, scope=scope)
        return await self.status(scope, agent=agent)

    @staticmethod
    async def put_in(u: UnitOfWork, *, agent: str | None, period: str, limit_nano_usd: int) -> None:
        """Create or change a budget within an open unit of work (``apply`` uses it too)."""
        now = utcnow()
        statement = dialect_insert(u, Budget).values(
            id=uuid.uuid4(),
            account_id=u.account.id,
            agent_slug=agent or "",
            period=period,
            limit_nano_usd=limit_nano_usd,
            updated_at=now,
        )
        await u.session.execute(
            statement.on_conflict_do_update(
                index_elements=["account_id", "agent_slug"],
                set_={"period": period, "limit_nano_usd": limit_nano_usd, "updated_at": now},
            )
        )

    async def status(self, scope: AccountScope, *, agent: str | None) -> BudgetStatus:
        async def op(u: UnitOfWork) -> BudgetStatus:
            budget = (
                await u.session.execute(
                    select(Budget).where(
                        Budget.account_id == u.account.id, Budget.agent_slug == (agent or "")
                    )
                )
            ).scalar_one_or_none()
            if budget is None:
                whose = f"agent '{agent}'" if agent else "this account"
                raise NotFound(f"no budget is set for {whose}", code="BUDGET_NOT_FOUND")
            start = period_start(budget.period)
            row = (
                await u.session.execute(
                    select(BudgetPeriod).where(
                        BudgetPeriod.budget_id == budget.id, BudgetPeriod.period_start == start
                    )
                )
            ).scalar_one_or_none()
            return BudgetStatus(
                agent=agent,
                period=budget.period,
                period_start=start,
                limit_nano_usd=budget.limit_nano_usd,
                spent_nano_usd=row.spent_nano_usd if row else 0,
                reserved_nano_usd=row.reserved_nano_usd if row else 0,
            )

        return await self._uow.run(op, scope=scope, write=False)
