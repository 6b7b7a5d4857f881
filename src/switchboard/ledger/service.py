"""The write-ahead cost ledger. Each provider call: ``open`` commits a ``pending`` row (naming
this process as its owner, carrying the estimated input) in its own short unit of work before
the request leaves; ``finish`` settles it with one conditional update afterwards — also when
the caller is being cancelled (the write is shielded and tracked). A settlement that meets a row
the sweeper already interrupted restores the provider's usage: usage is never dropped.

Each of those state changes also changes the row's per-day rollup (``usage_daily``) in the same
unit of work, so the rollup equals the ledger at every commit (:mod:`switchboard.ledger.rollup`,
the reports in :mod:`switchboard.ledger.rollup_service`)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter

from switchboard.config.schema import PriceConfig
from switchboard.db.base import utcnow
from switchboard.db.uow import AccountScope, CrossAccount, UnitOfWork, UnitOfWorkFactory
from switchboard.errors import SwitchboardError
from switchboard.ledger.leases import OwnerLease
from switchboard.ledger.models import LlmRequest
from switchboard.ledger.repository import LedgerRepository
from switchboard.ledger.rollup import RollupKey, contribution, merge
from switchboard.ledger.rollup_repository import RollupRepository
from switchboard.ledger.rollup_service import RollupReports
from switchboard.ledger.schemas import GroupBy, LedgerFilters, TotalsRow, UsageRow
from switchboard.money import Cost, price_of
from switchboard.pagination import decode_time_cursor, encode_time_cursor
from switchboard.traffic.budgets import BudgetGate, BudgetService, Reservation

log = logging.getLogger("switchboard.ledger")
T = TypeVar("T")
FinalStatus = Literal["complete", "error", "cancelled"]
UsageSource = Literal["reported", "partial", "estimated"]
SWEEP_BATCH = 500
SWEEP_MAX_BATCHES = 100


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who a provider call is billed to and how; built once per agent run."""

    scope: AccountScope
    run_id: uuid.UUID
    provider: str
    model: str
    kind: str = "chat"
    agent_id: uuid.UUID | None = None
    agent_slug: str | None = None
    conversation_id: uuid.UUID | None = None
    timeout_s: float = 120.0
    store_bodies: bool = False
    prices: Mapping[str, PriceConfig] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    source: UsageSource = "reported"


class LedgerCounters:
    """The ledger's Prometheus counters, once per registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.swept = Counter(
            "switchboard_ledger_rows_swept",
            "Pending ledger rows of dead processes marked interrupted",
            registry=registry,
        )
        self.resettled = Counter(
            "switchboard_ledger_rows_resettled",
            "Settlements that met a swept row and restored the provider's usage",
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry | None) -> LedgerCounters:
        if registry is None:
            return cls(None)
        found = _COUNTERS.get(registry)
        if found is None:
            found = _COUNTERS[registry] = cls(registry)
        return found


_COUNTERS: WeakKeyDictionary[CollectorRegistry, LedgerCounters] = WeakKeyDictionary()


class LedgerService(RollupReports):
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        *,
        lease: OwnerLease | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._uow = uow
        self.lease = lease or OwnerLease(uow, ttl_s=30.0, heartbeat_s=10.0)
        self.gate = BudgetGate()
        self.counters = LedgerCounters.of(registry)
        self._finishing: set[asyncio.Task[Any]] = set()

    async def open(
        self,
        ctx: CallContext,
        *,
        request_body: Any | None = None,
        budget_hold_nano_usd: int = 0,
        estimated_input_tokens: int = 0,
        budget_wait_s: float = 30.0,
    ) -> tuple[uuid.UUID, Reservation | None]:
        """Reserve the call's worst case against the budgets (if any) and commit its pending
        row, in one unit of work: both or neither. Waits (up to ``budget_wait_s``) while only
        the reservations of calls in flight stand in the way."""
        owner_id = await self.lease.ensure()
        row_id = uuid.uuid4()
        estimate = price_of(
            model=ctx.model,
            provider=ctx.provider,
            input_tokens=estimated_input_tokens,
            output_tokens=0,
            cached_tokens=0,
            overrides=ctx.prices,
        )

        async def op(u: UnitOfWork) -> Reservation | None:
            reservation = await BudgetService.reserve_in(
                u, agent=ctx.agent_slug, amount_nano_usd=budget_hold_nano_usd
            )
            now = utcnow()
            LedgerRepository(u).add_pending(
                LlmRequest(
                    id=row_id,
                    owner_id=owner_id,
                    agent_id=ctx.agent_id,
                    agent_slug=ctx.agent_slug,
                    conversation_id=ctx.conversation_id,
                    run_id=ctx.run_id,
                    kind=ctx.kind,
                    provider=ctx.provider,
                    model=ctx.model,
                    created_at=now,
                    deadline_at=now + timedelta(seconds=ctx.timeout_s),
                    request_body=request_body if ctx.store_bodies else None,
                    # Until it settles (or is swept), the row carries the estimated input.
                    usage_source="estimated",
                    input_tokens=estimated_input_tokens,
                    output_tokens=0,
                    cached_tokens=0,
                    cost_nano_usd=estimate.nano_usd,
                    priced=estimate.priced,
                    budget_hold_nano_usd=reservation.amount_nano_usd if reservation else 0,
                    budget_period_ids=(
                        [str(p) for p in reservation.period_ids] if reservation else None
                    ),
                )
            )
            return reservation

        async def attempt() -> Reservation | None:
            # Shielded and tracked: a caller cancelled while the row commits (a client gone)
            # must not leave a committed pending row and its budget hold behind, unsettled
            # under a live owner; once committed, such a row is settled as cancelled at once.
            task = self._track(self._uow.run(op, scope=ctx.scope))
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                task.add_done_callback(lambda done: self._settle_orphan(ctx, row_id, done))
                raise

        reservation = await self.gate.reserve(
            (ctx.scope.id, ctx.agent_slug or ""), attempt, timeout_s=budget_wait_s
        )
        return row_id, reservation

    async def finish(
        self,
        ctx: CallContext,
        row_id: uuid.UUID,
        *,
        status: FinalStatus,
        usage: TokenUsage,
        latency_ms: int,
        provider_response_id: str | None = None,
        error: SwitchboardError | None = None,
        response_body: Any | None = None,
        reservation: Reservation | None = None,
    ) -> Cost:
        """Settle a row. Runs to completion even if the caller is cancelled meanwhile."""
        cost = price_of(
            model=ctx.model,
            provider=ctx.provider,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            overrides=ctx.prices,
        )
        values: dict[str, Any] = {
            "status": status,
            "usage_source": usage.source,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_tokens": usage.cached_tokens,
            "cost_nano_usd": cost.nano_usd,
            "priced": cost.priced,
            "latency_ms": latency_ms,
            "provider_response_id": provider_response_id,
            "finished_at": utcnow(),
            "error_code": error.code if error else ("CANCELLED" if status == "cancelled" else None),
            "error_class": error.kind if error else None,
        }
        if ctx.store_bodies and response_body is not None:
            values["response_body"] = response_body

        gained = contribution(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            cost_nano_usd=cost.nano_usd,
            priced=cost.priced,
            usage_source=usage.source,
            latency_ms=latency_ms,
        )

        # Lock order of every writer here and in the sweep: ledger rows, rollup rows (sorted
        # keys), budget periods — the hottest (an account's budget period) last and shortest.
        async def op(u: UnitOfWork) -> str:
            repo = LedgerRepository(u)
            rollups = RollupRepository(u)
            settled = await repo.finish(row_id, values)
            if settled is not None:
                key = RollupKey.of(
                    account_id=u.account.id,
                    created_at=settled.created_at,
                    agent_slug=settled.agent_slug,
                    provider=settled.provider,
                    model=settled.model,
                    status=status,
                    error_class=values["error_class"],
                )
                await rollups.add({key: gained}, slugs={key.account_id: settled.account_slug})
                if reservation is not None:
                    await BudgetService.settle_in(u, reservation, actual_nano_usd=cost.nano_usd)
                return "settled"
            # Swept while alive (the lease expired): the sweeper released the reservation and
            # charged the estimate; the provider's usage wins, the budget takes the difference,
            # the rollup moves the call from the swept row's key to its final one.
            swept = await repo.swept(row_id)
            if swept is None or not await repo.resettle(
                row_id, values, swept_cost_nano_usd=swept.cost_nano_usd
            ):
                return "final"
            was = swept.rolled
            now = replace(was.key, status=status, error_class=values["error_class"] or "")
            taken = {name: -value for name, value in was.counts.items()}
            await rollups.add(
                merge([(was.key, taken), (now, gained)]),
                slugs={was.key.account_id: was.account_slug},
            )
            await rollups.drop_empty(was.key)
            await BudgetService.charge_in(
                u, swept.period_ids, delta_nano_usd=cost.nano_usd - swept.cost_nano_usd
            )
            return "resettled"

        account_id = ctx.scope.id
        outcome = await self._shielded(
            self._uow.run(op, scope=ctx.scope, insist=True),
            lambda: self.gate.settled(account_id),
        )
        if outcome == "resettled":
            self.counters.resettled.inc()
            log.warning(
                "ledger row %s had been swept as interrupted; settled as %s with the provider's "
                "usage (%d in, %d out)",
                row_id,
                status,
                usage.input_tokens,
                usage.output_tokens,
                extra={"llm_request_id": str(row_id)},
            )
        elif outcome == "final":
            log.error(
                "ledger row %s was already final when settled as %s",
                row_id,
                status,
                extra={"llm_request_id": str(row_id)},
            )
        return cost

    def _track(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """A task that finishes even if its caller is cancelled; shutdown drains it."""
        task = asyncio.ensure_future(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        return task

    def _settle_orphan(
        self, ctx: CallContext, row_id: uuid.UUID, opened: asyncio.Task[Reservation | None]
    ) -> None:
        """The pending row ``opened`` committed for a caller that was cancelled meanwhile: no
        request left for it, so settle it cancelled, with nothing used, releasing its hold."""
        if opened.cancelled() or opened.exception() is not None:
            return  # nothing was committed
        self._track(
            self.finish(
                ctx,
                row_id,
                status="cancelled",
                usage=TokenUsage(),
                latency_ms=0,
                reservation=opened.result(),
            )
        )

    async def _shielded(self, work: Coroutine[Any, Any, str], then: Callable[[], None]) -> str:
        task = self._track(work)
        task.add_done_callback(lambda _: then())  # wakes budget waiters, even if we are cancelled
        return await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait for settlements still in flight (at shutdown), including those that finishing
        work starts (an orphaned row's settlement)."""
        while self._finishing:
            await asyncio.gather(*list(self._finishing), return_exceptions=True)
            await asyncio.sleep(0)  # let done-callbacks start what they start

    async def sweep(self, *, now: datetime | None = None) -> int:
        """Pending rows of owners whose lease expired become ``interrupted`` (a crash, a kill),
        keeping their estimated usage; their budget holds are released and the estimate
        charged. In batches, each its own unit of work."""
        at = now or utcnow()

        async def op(u: UnitOfWork) -> tuple[int, int]:
            repo = LedgerRepository(u)
            rows = await repo.abandoned(at, limit=SWEEP_BATCH)
            if not rows:
                return 0, 0
            interrupted = await repo.interrupt([r.id for r in rows], at)
            swept = {row.id for row in interrupted}
            # Their estimated usage enters the rollup, one upsert per key in sorted key order.
            await RollupRepository(u).add(
                merge((row.rolled.key, row.rolled.counts) for row in interrupted),
                slugs={row.rolled.key.account_id: row.rolled.account_slug for row in interrupted},
            )
            holds: dict[uuid.UUID, tuple[int, int]] = {}
            for row in rows:
                if row.id not in swept:
                    continue
                for period_id in row.period_ids:
                    hold, cost = holds.get(period_id, (0, 0))
                    holds[period_id] = (hold + row.hold_nano_usd, cost + row.cost_nano_usd)
            await BudgetService.release_in(u, holds)
            return len(rows), len(swept)

        total = 0
        for _ in range(SWEEP_MAX_BATCHES):
            found, swept = await self._uow.run(
                op, scope=CrossAccount("the sweeper: dead owners' rows of every account")
            )
            total += swept
            if found < SWEEP_BATCH:
                break
        if total:
            self.counters.swept.inc(total)
        return total

    async def pending_count(self) -> int:
        """How many ledger rows are pending right now, across accounts (for /metrics)."""

        async def op(u: UnitOfWork) -> int:
            return await LedgerRepository(u).count_pending()

        return await self._uow.run(
            op, scope=CrossAccount("/metrics: pending calls of every account"), write=False
        )

    async def rows(self, scope: AccountScope, ids: list[uuid.UUID]) -> list[LlmRequest]:
        async def op(u: UnitOfWork) -> list[LlmRequest]:
            return await LedgerRepository(u).get_many(ids)

        return await self._uow.run(op, scope=scope, write=False)

    async def page(
        self, scope: AccountScope, filters: LedgerFilters, *, cursor: str | None, limit: int
    ) -> tuple[list[LlmRequest], str | None]:
        before = decode_time_cursor(cursor)

        async def op(u: UnitOfWork) -> list[LlmRequest]:
            return await LedgerRepository(u).page(filters, before=before, limit=limit + 1)

        rows = await self._uow.run(op, scope=scope, write=False)
        if len(rows) > limit:
            last = rows[limit - 1]
            return rows[:limit], encode_time_cursor(last.created_at, last.id)
        return rows, None

    async def usage(
        self, scope: AccountScope, filters: LedgerFilters, group_by: GroupBy | None
    ) -> tuple[list[UsageRow], UsageRow]:
        async def op(u: UnitOfWork) -> tuple[list[UsageRow], UsageRow]:
            repo = LedgerRepository(u)
            groups = await repo.usage(filters, group_by) if group_by else []
            [total] = await repo.usage(filters, None)
            return groups, total

        return await self._uow.run(op, scope=scope, write=False)

    async def totals(
        self, *, account_ids: list[uuid.UUID] | None = None, provider: str | None = None
    ) -> list[TotalsRow]:
        """Calls, tokens and cost by status and usage source, across accounts (operator)."""

        async def op(u: UnitOfWork) -> list[TotalsRow]:
            return await LedgerRepository(u).totals(account_ids=account_ids, provider=provider)

        return await self._uow.run(
            op, scope=CrossAccount("operator report: totals across accounts"), write=False
        )
