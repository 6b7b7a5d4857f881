"""Ledger queries. Inserts and reads are scoped to the unit of work's account; the sweep of
abandoned ``pending`` rows is the one global operation. Never commits."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Date, Select, and_, cast, func, or_, select, update

from switchboard.db.uow import UnitOfWork
from switchboard.ledger.models import LlmRequest

GroupBy = Literal["agent", "model", "day"]


@dataclass(frozen=True, slots=True)
class LedgerFilters:
    conversation_id: uuid.UUID | None = None
    agent: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    group: str | None
    requests: int
    input_tokens: int
    output_tokens: int
    cost_nano_usd: int
    unpriced_requests: int


class LedgerRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    def add_pending(self, row: LlmRequest) -> None:
        row.account_id = self._uow.account.id
        row.account_slug = self._uow.account.slug
        row.status = "pending"
        self._uow.session.add(row)

    async def finish(self, row_id: uuid.UUID, values: Mapping[str, Any]) -> bool:
        """Finalise a pending row; False if it was no longer pending (e.g. swept)."""
        result = await self._uow.session.execute(
            update(LlmRequest)
            .where(
                LlmRequest.id == row_id,
                LlmRequest.account_id == self._uow.account.id,
                LlmRequest.status == "pending",
            )
            .values(**values)
        )
        return bool(getattr(result, "rowcount", 0))

    async def sweep(self, now: datetime) -> int:
        """Mark every pending row past its deadline ``interrupted`` (all accounts)."""
        result = await self._uow.session.execute(
            update(LlmRequest)
            .where(LlmRequest.status == "pending", LlmRequest.deadline_at < now)
            .values(
                status="interrupted",
                finished_at=now,
                error_code="INTERRUPTED",
                error_class="transient",
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def _filtered(self, statement: Select[Any], filters: LedgerFilters) -> Select[Any]:
        statement = statement.where(LlmRequest.account_id == self._uow.account.id)
        if filters.conversation_id is not None:
            statement = statement.where(LlmRequest.conversation_id == filters.conversation_id)
        if filters.agent is not None:
            statement = statement.where(LlmRequest.agent_slug == filters.agent)
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
            key = (
                func.date(LlmRequest.created_at)
                if self._uow.dialect == "sqlite"
                else cast(LlmRequest.created_at, Date)
            )
        else:
            key = None
        columns = [
            func.count(LlmRequest.id),
            func.coalesce(func.sum(LlmRequest.input_tokens), 0),
            func.coalesce(func.sum(LlmRequest.output_tokens), 0),
            func.coalesce(func.sum(LlmRequest.cost_nano_usd), 0),
            func.count(LlmRequest.id).filter(LlmRequest.priced.is_(False)),
        ]
        grouped: Select[Any] = select(*columns, *([key] if key is not None else []))  # type: ignore[assignment]
        statement = self._filtered(grouped, filters)
        if key is not None:
            statement = statement.group_by(key).order_by(key)
        rows = (await self._uow.session.execute(statement)).all()
        return [
            UsageRow(
                group=None if key is None else (str(row[5]) if row[5] is not None else None),
                requests=int(row[0]),
                input_tokens=int(row[1]),
                output_tokens=int(row[2]),
                cost_nano_usd=int(row[3]),
                unpriced_requests=int(row[4]),
            )
            for row in rows
        ]
