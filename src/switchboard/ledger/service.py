"""The write-ahead cost ledger. Each provider call: ``open`` commits a ``pending`` row in its own
short unit of work before the request leaves; ``finish`` settles it with one conditional update
afterwards — also when the caller is being cancelled (the write is shielded and tracked)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from switchboard.db.base import utcnow
from switchboard.db.uow import AccountScope, UnitOfWork, UnitOfWorkFactory
from switchboard.errors import SwitchboardError
from switchboard.ledger.models import LlmRequest
from switchboard.ledger.pricing import Cost, price_of
from switchboard.ledger.repository import GroupBy, LedgerFilters, LedgerRepository, UsageRow
from switchboard.pagination import decode_time_cursor, encode_time_cursor
from switchboard.registry.config_schema import PriceConfig
from switchboard.traffic.budgets import BudgetService, Reservation

log = logging.getLogger("switchboard.ledger")
FinalStatus = Literal["complete", "error", "cancelled"]


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


class LedgerService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow
        self._finishing: set[asyncio.Task[Any]] = set()

    async def open(
        self, ctx: CallContext, *, request_body: Any | None = None, budget_hold_nano_usd: int = 0
    ) -> tuple[uuid.UUID, Reservation | None]:
        """Reserve the call's maximum cost against the budgets (if any) and commit its pending
        row, in one unit of work: both or neither."""
        row_id = uuid.uuid4()
        now = utcnow()

        async def op(u: UnitOfWork) -> Reservation | None:
            reservation = await BudgetService.reserve_in(
                u, agent=ctx.agent_slug, amount_nano_usd=budget_hold_nano_usd
            )
            LedgerRepository(u).add_pending(
                LlmRequest(
                    id=row_id,
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
                    input_tokens=0,
                    output_tokens=0,
                    cached_tokens=0,
                    cost_nano_usd=0,
                    priced=True,
                )
            )
            return reservation

        reservation = await self._uow.run(op, scope=ctx.scope)
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

        async def op(u: UnitOfWork) -> bool:
            if reservation is not None:
                await BudgetService.settle_in(u, reservation, actual_nano_usd=cost.nano_usd)
            return await LedgerRepository(u).finish(row_id, values)

        updated = await self._shielded(self._uow.run(op, scope=ctx.scope))
        if not updated:
            log.warning("ledger row %s was no longer pending when finished as %s", row_id, status)
        return cost

    async def _shielded(self, work: Coroutine[Any, Any, bool]) -> bool:
        task = asyncio.ensure_future(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        return await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait for settlements still in flight (at shutdown)."""
        if self._finishing:
            await asyncio.gather(*list(self._finishing), return_exceptions=True)

    async def sweep(self, *, now: datetime | None = None) -> int:
        """Pending rows past their deadline become ``interrupted`` (a crash, a kill)."""

        async def op(u: UnitOfWork) -> int:
            return await LedgerRepository(u).sweep(now or utcnow())

        return await self._uow.run(op)

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


class Sweeper:
    """Runs :meth:`LedgerService.sweep` at start-up and then every ``interval_s``."""

    def __init__(self, ledger: LedgerService, *, interval_s: float) -> None:
        self._ledger = ledger
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        swept = await self._ledger.sweep()
        if swept:
            log.warning("marked %d abandoned ledger rows interrupted", swept)
        self._task = asyncio.create_task(self._loop(), name="ledger-sweeper")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                swept = await self._ledger.sweep()
            except SwitchboardError as exc:
                log.warning("ledger sweep failed: %s", exc)
                continue
            if swept:
                log.warning("marked %d abandoned ledger rows interrupted", swept)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
