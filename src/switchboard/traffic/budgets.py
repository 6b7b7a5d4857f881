"""Budgets: the database is the source of truth. A reservation of a call's maximum possible
cost is one conditional update (``… WHERE spent + reserved + :amount <= limit``), so concurrent
calls can never overspend; settlement moves the reservation to ``spent`` at the actual cost.
Both run inside the unit of work that opens or settles the call's ledger row.

A call is refused (402 ``BUDGET_EXCEEDED``) only when ``spent + its own worst case`` exceeds the
limit. When it is the *reservations* of calls in flight that stand in the way, the call waits in
:class:`BudgetGate` for them to settle — woken by this process's settlements, polling briefly
for other processes' — up to the provider's queue timeout, then 503 ``BUDGET_BUSY``."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

from sqlalchemy import select, update

from switchboard.db.base import utcnow
from switchboard.db.uow import AccountScope, UnitOfWork, UnitOfWorkFactory
from switchboard.db.upsert import dialect_insert
from switchboard.errors import BudgetBusy, BudgetExceeded, NotFound
from switchboard.money import nano_to_usd_str
from switchboard.traffic.models import Budget, BudgetPeriod

Period = Literal["day", "month"]
T = TypeVar("T")
BUDGET_POLL_S = 0.2  # how often the first waiter looks for other processes' settlements


class ReservationsInFlight(Exception):
    """The money is there, but reservations of calls in flight stand in the way: wait."""

    def __init__(self, whose: str) -> None:
        super().__init__(whose)
        self.whose = whose


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
                spent = (
                    await u.session.execute(
                        select(BudgetPeriod.spent_nano_usd).where(
                            BudgetPeriod.budget_id == budget.id, BudgetPeriod.period_start == start
                        )
                    )
                ).scalar_one()
                if spent + amount_nano_usd <= budget.limit_nano_usd:
                    raise ReservationsInFlight(whose)
                raise BudgetExceeded(
                    f"the {'daily' if budget.period == 'day' else 'monthly'} budget of {whose} "
                    f"({nano_to_usd_str(budget.limit_nano_usd)} USD) cannot cover this call "
                    f"(up to {nano_to_usd_str(amount_nano_usd)} USD)",
                    details={
                        "limit_usd": nano_to_usd_str(budget.limit_nano_usd),
                        "spent_usd": nano_to_usd_str(spent),
                        "worst_case_usd": nano_to_usd_str(amount_nano_usd),
                    },
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

    @staticmethod
    async def release_in(u: UnitOfWork, holds: Mapping[uuid.UUID, tuple[int, int]]) -> None:
        """For the sweeper: per budget period, release ``hold`` and charge ``cost`` (the
        estimated cost of calls whose process died)."""
        for period_id, (hold, cost) in holds.items():
            await u.session.execute(
                update(BudgetPeriod)
                .where(BudgetPeriod.id == period_id)
                .values(
                    reserved_nano_usd=BudgetPeriod.reserved_nano_usd - hold,
                    spent_nano_usd=BudgetPeriod.spent_nano_usd + cost,
                )
            )

    @staticmethod
    async def charge_in(
        u: UnitOfWork, period_ids: tuple[uuid.UUID, ...], *, delta_nano_usd: int
    ) -> None:
        """Correct ``spent`` by ``delta`` (a swept call settled late: its reservation was
        already released by the sweeper, only the cost changes)."""
        if not period_ids or not delta_nano_usd:
            return
        await u.session.execute(
            update(BudgetPeriod)
            .where(BudgetPeriod.id.in_(period_ids))
            .values(spent_nano_usd=BudgetPeriod.spent_nano_usd + delta_nano_usd)
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
            [status] = await _statuses_in(u, [budget])
            return status

        return await self._uow.run(op, scope=scope, write=False)

    async def statuses(self, scope: AccountScope) -> list[BudgetStatus]:
        """Every budget of the account (its own first, then its agents'), with this period's
        spend and reservations."""

        async def op(u: UnitOfWork) -> list[BudgetStatus]:
            budgets = (
                await u.session.execute(
                    select(Budget)
                    .where(Budget.account_id == u.account.id)
                    .order_by(Budget.agent_slug)
                )
            ).scalars()
            return await _statuses_in(u, list(budgets))

        return await self._uow.run(op, scope=scope, write=False)


async def _statuses_in(u: UnitOfWork, budgets: list[Budget]) -> list[BudgetStatus]:
    found: list[BudgetStatus] = []
    for budget in budgets:
        start = period_start(budget.period)
        row = (
            await u.session.execute(
                select(BudgetPeriod).where(
                    BudgetPeriod.budget_id == budget.id, BudgetPeriod.period_start == start
                )
            )
        ).scalar_one_or_none()
        found.append(
            BudgetStatus(
                agent=budget.agent_slug or None,
                period=budget.period,
                period_start=start,
                limit_nano_usd=budget.limit_nano_usd,
                spent_nano_usd=row.spent_nano_usd if row else 0,
                reserved_nano_usd=row.reserved_nano_usd if row else 0,
            )
        )
    return found


class BudgetGate:
    """Calls waiting for in-flight reservations to settle, first come first served per
    (account, agent). Only the first waiter of a queue tries again — when a settlement of its
    account happens in this process, or every ``poll_s`` for other processes' — and, once it has
    its reservation, hands the turn to the next; so a settlement costs one or two attempts, not
    one per waiter."""

    def __init__(self, *, poll_s: float = BUDGET_POLL_S) -> None:
        self._queues: dict[tuple[uuid.UUID, str], deque[asyncio.Event]] = {}
        self._poll_s = poll_s

    def waiting(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def settled(self, account_id: uuid.UUID) -> None:
        """A call of ``account_id`` settled here: wake the first waiter of its queues."""
        for (account, _), queue in self._queues.items():
            if account == account_id and queue:
                queue[0].set()

    async def reserve(
        self,
        key: tuple[uuid.UUID, str],
        attempt: Callable[[], Awaitable[T]],
        *,
        timeout_s: float,
    ) -> T:
        """``attempt()`` until it stops raising :class:`ReservationsInFlight` (BudgetBusy after
        ``timeout_s``). Its other errors, BudgetExceeded among them, propagate."""
        if not self._queues.get(key):
            try:
                return await attempt()
            except ReservationsInFlight:
                pass
        queue = self._queues.setdefault(key, deque())
        me = asyncio.Event()
        queue.append(me)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise BudgetBusy(
                        "the budget is held by calls in flight that did not settle in time",
                        retry_after_s=1.0,
                    )
                wait_s = min(remaining, self._poll_s) if queue[0] is me else remaining
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await me.wait()
                me.clear()
                if queue[0] is not me:
                    continue
                try:
                    return await attempt()
                except ReservationsInFlight:
                    continue
        finally:
            was_first = queue[0] is me
            queue.remove(me)
            if queue:
                if was_first:
                    queue[0].set()  # the next one may fit too
            elif self._queues.get(key) is queue:
                del self._queues[key]
