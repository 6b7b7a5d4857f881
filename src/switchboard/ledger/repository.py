"""Ledger queries. Inserts and reads are scoped to the unit of work's account; the sweep of
abandoned ``pending`` rows is the one global operation. Never commits.

Every statement that changes a ledger row's status or usage (:meth:`LedgerRepository.finish`,
:meth:`~LedgerRepository.resettle`, :meth:`~LedgerRepository.interrupt`) returns what the
caller needs to change the row's rollup (:class:`RollupRepository`) in the same unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select, update

from switchboard.db.uow import UnitOfWork
from switchboard.ledger.models import LlmRequest, ProcessLease
from switchboard.ledger.rollup_repository import ROLLED, Rolled, rolled, utc_day_of
from switchboard.ledger.schemas import GroupBy, LedgerFilters, TotalsRow, UsageRow


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A pending row of a dead owner, with the budget hold the sweeper releases."""

    id: uuid.UUID
    cost_nano_usd: int
    hold_nano_usd: int
    period_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True, slots=True)
class Settled:
    """What a settlement's conditional update returns: the rest of the row's rollup key."""

    created_at: datetime
    agent_slug: str | None
    provider: str
    model: str
    account_slug: str


@dataclass(frozen=True, slots=True)
class Swept:
    """A row the sweeper interrupted: what it charged, the budget periods it charged, and what
    it adds to the rollup (taken back when a late settlement overwrites it)."""

    cost_nano_usd: int
    period_ids: tuple[uuid.UUID, ...]
    rolled: Rolled


@dataclass(frozen=True, slots=True)
class Interrupted:
    """A row the sweep has just interrupted."""

    id: uuid.UUID
    rolled: Rolled


def period_ids_of(value: object) -> tuple[uuid.UUID, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(uuid.UUID(str(item)) for item in value)


def abandoned_condition(now: datetime) -> ColumnElement[bool]:
    """Pending rows whose owner holds no live lease (rows from before owners existed: past
    their deadline)."""
    lease_alive = exists().where(
        ProcessLease.owner_id == LlmRequest.owner_id, ProcessLease.expires_at >= now
    )
    return and_(
        LlmRequest.status == "pending",
        or_(
            and_(LlmRequest.owner_id.is_(None), LlmRequest.deadline_at < now),
            and_(LlmRequest.owner_id.is_not(None), ~lease_alive),
        ),
    )


class LedgerRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    def add_pending(self, row: LlmRequest) -> None:
        row.account_id = self._uow.account.id
        row.account_slug = self._uow.account.slug
        row.status = "pending"
        self._uow.session.add(row)

    async def finish(self, row_id: uuid.UUID, values: Mapping[str, Any]) -> Settled | None:
        """Finalise a pending row, returning the rest of its rollup key; None if it was no
        longer pending (e.g. swept)."""
        result = await self._uow.session.execute(
            update(LlmRequest)
            .where(
                LlmRequest.id == row_id,
                LlmRequest.account_id == self._uow.account.id,
                LlmRequest.status == "pending",
            )
            .values(**values)
            .returning(
                LlmRequest.created_at,
                LlmRequest.agent_slug,
                LlmRequest.provider,
                LlmRequest.model,
                LlmRequest.account_slug,
            )
        )
        row = result.one_or_none()
        if row is None:
            return None
        return Settled(
            created_at=row.created_at,
            agent_slug=row.agent_slug,
            provider=row.provider,
            model=row.model,
            account_slug=row.account_slug,
        )

    async def swept(self, row_id: uuid.UUID) -> Swept | None:
        """The row, if the sweeper interrupted it (locked until the end of the transaction),
        with its rollup contribution as it stands."""
        row = (
            await self._uow.session.execute(
                select(LlmRequest.cost_nano_usd, LlmRequest.budget_period_ids, *ROLLED)
                .where(
                    LlmRequest.id == row_id,
                    LlmRequest.account_id == self._uow.account.id,
                    LlmRequest.status == "interrupted",
                    LlmRequest.error_code == "INTERRUPTED",
                )
                .with_for_update()
            )
        ).one_or_none()
        if row is None:
            return None
        return Swept(
            cost_nano_usd=int(row[0]), period_ids=period_ids_of(row[1]), rolled=rolled(row)
        )

    async def resettle(
        self, row_id: uuid.UUID, values: Mapping[str, Any], *, swept_cost_nano_usd: int
    ) -> bool:
        """Overwrite a swept row with the provider's usage (conditional on what was read)."""
        result = await self._uow.session.execute(
            update(LlmRequest)
            .where(
                LlmRequest.id == row_id,
                LlmRequest.account_id == self._uow.account.id,
                LlmRequest.status == "interrupted",
                LlmRequest.error_code == "INTERRUPTED",
                LlmRequest.cost_nano_usd == swept_cost_nano_usd,
            )
            .values(**values)
        )
        return bool(getattr(result, "rowcount", 0))

    async def abandoned(self, now: datetime, *, limit: int) -> list[Abandoned]:
        """Up to ``limit`` pending rows of dead owners, all accounts (locked; rows another
        sweeper holds are skipped on PostgreSQL)."""
        rows = (
            await self._uow.session.execute(
                select(
                    LlmRequest.id,
                    LlmRequest.cost_nano_usd,
                    LlmRequest.budget_hold_nano_usd,
                    LlmRequest.budget_period_ids,
                )
                .where(abandoned_condition(now))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        return [
            Abandoned(
                id=row[0],
                cost_nano_usd=int(row[1]),
                hold_nano_usd=int(row[2]),
                period_ids=period_ids_of(row[3]),
            )
            for row in rows
        ]

    async def interrupt(self, ids: list[uuid.UUID], now: datetime) -> list[Interrupted]:
        """Mark still-pending rows ``interrupted`` (all accounts); the rows it changed, with
        their rollup contributions. Their estimated usage stays."""
        result = await self._uow.session.execute(
            update(LlmRequest)
            .where(LlmRequest.id.in_(ids), LlmRequest.status == "pending")
            .values(
                status="interrupted",
                finished_at=now,
                error_code="INTERRUPTED",
                error_class="transient",
            )
            .returning(LlmRequest.id, *ROLLED)
        )
        return [Interrupted(id=row.id, rolled=rolled(row)) for row in result]

    async def count_pending(self) -> int:
        """Calls in flight (or left by a dead process, until swept), over every account."""
        statement = (
            select(func.count()).select_from(LlmRequest).where(LlmRequest.status == "pending")
        )
        return int((await self._uow.session.execute(statement)).scalar_one())

    async def totals(
        self, *, account_ids: list[uuid.UUID] | None, provider: str | None
    ) -> list[TotalsRow]:
        """Calls, tokens and cost by status and usage source (reconciliation; all accounts
        unless ``account_ids``)."""
        statement = select(
            LlmRequest.status,
            LlmRequest.usage_source,
            func.count(LlmRequest.id),
            func.coalesce(func.sum(LlmRequest.input_tokens), 0),
            func.coalesce(func.sum(LlmRequest.output_tokens), 0),
            func.coalesce(func.sum(LlmRequest.cost_nano_usd), 0),
        ).group_by(LlmRequest.status, LlmRequest.usage_source)
        if account_ids is not None:
            statement = statement.where(LlmRequest.account_id.in_(account_ids))
        if provider is not None:
            statement = statement.where(LlmRequest.provider == provider)
        rows = (await self._uow.session.execute(statement)).all()
        return [
            TotalsRow(
                status=str(r[0]),
                usage_source=str(r[1]),
                requests=int(r[2]),
                input_tokens=int(r[3]),
                output_tokens=int(r[4]),
                cost_nano_usd=int(r[5]),
            )
            for r in rows
        ]

    def _filtered(self, statement: Select[Any], filters: LedgerFilters) -> Select[Any]:
        statement = statement.where(LlmRequest.account_id == self._uow.account.id)
        if filters.conversation_id is not None:
            statement = statement.where(LlmRequest.conversation_id == filters.conversation_id)
        if filters.run_id is not None:
            statement = statement.where(LlmRequest.run_id == filters.run_id)
        if filters.agent is not None:
            statement = statement.where(LlmRequest.agent_slug == filters.agent)
        if filters.model is not None:
            statement = statement.where(LlmRequest.model == filters.model)
        if filters.status is not None:
            statement = statement.where(LlmRequest.status == filters.status)
        if filters.since is not None:
            statement = statement.where(LlmRequest.created_at >= filters.since)
        if filters.until is not None:
            statement = statement.where(LlmRequest.created_at < filters.until)
        return statement

    def list_statement(
        self, filters: LedgerFilters, *, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> Select[Any]:
        """Newest first, keyset-paginated on (created_at, id)."""
        statement = self._filtered(select(LlmRequest), filters)
        if before is not None:
            created, row_id = before
            statement = statement.where(
                or_(
                    LlmRequest.created_at < created,
                    and_(LlmRequest.created_at == created, LlmRequest.id < row_id),
                )
            )
        return statement.order_by(LlmRequest.created_at.desc(), LlmRequest.id.desc()).limit(limit)

    async def page(
        self, filters: LedgerFilters, *, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[LlmRequest]:
        result = await self._uow.session.execute(
            self.list_statement(filters, before=before, limit=limit)
        )
        return list(result.scalars())

    async def get_many(self, ids: list[uuid.UUID]) -> list[LlmRequest]:
        result = await self._uow.session.execute(
            select(LlmRequest).where(
                LlmRequest.account_id == self._uow.account.id, LlmRequest.id.in_(ids)
            )
        )
        return list(result.scalars())

    async def usage(self, filters: LedgerFilters, group_by: GroupBy | None) -> list[UsageRow]:
        key: Any
        if group_by == "agent":
            key = LlmRequest.agent_slug
        elif group_by == "model":
            key = LlmRequest.model
        elif group_by == "day":
            key = utc_day_of(LlmRequest.created_at, self._uow.dialect)
        else:
            key = None
        estimated = LlmRequest.usage_source == "estimated"
        columns = [
            func.count(LlmRequest.id),
            func.coalesce(func.sum(LlmRequest.input_tokens), 0),
            func.coalesce(func.sum(LlmRequest.output_tokens), 0),
            func.coalesce(func.sum(LlmRequest.cost_nano_usd), 0),
            func.count(LlmRequest.id).filter(LlmRequest.priced.is_(False)),
            func.count(LlmRequest.id).filter(estimated),
            func.coalesce(func.sum(LlmRequest.input_tokens).filter(estimated), 0),
            func.coalesce(func.sum(LlmRequest.output_tokens).filter(estimated), 0),
            func.coalesce(func.sum(LlmRequest.cost_nano_usd).filter(estimated), 0),
        ]
        grouped: Select[Any] = select(*columns, *([key] if key is not None else []))  # type: ignore[assignment]
        statement = self._filtered(grouped, filters)
        if key is not None:
            statement = statement.group_by(key).order_by(key)
        rows = (await self._uow.session.execute(statement)).all()
        return [
            UsageRow(
                group=None if key is None else (str(row[9]) if row[9] is not None else None),
                requests=int(row[0]),
                input_tokens=int(row[1]),
                output_tokens=int(row[2]),
                cost_nano_usd=int(row[3]),
                unpriced_requests=int(row[4]),
                estimated_requests=int(row[5]),
                estimated_input_tokens=int(row[6]),
                estimated_output_tokens=int(row[7]),
                estimated_cost_nano_usd=int(row[8]),
            )
            for row in rows
        ]
