"""Rollup queries: ``usage_daily`` — its increments, written in the unit of work that changes
the ledger rows they sum; its reads; and the aggregation of the ledger it must equal (which
``rebuild`` writes and ``verify`` compares). Never commits. A repository like
:mod:`switchboard.ledger.repository`: only the ledger's services use it; entrypoints (the CLI,
the console) call ``LedgerService``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    and_,
    cast,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
)

from switchboard.db.uow import UnitOfWork
from switchboard.db.upsert import dialect_insert
from switchboard.ledger.models import LlmRequest, UsageDaily
from switchboard.ledger.rollup import (
    COUNTERS,
    KEY_COLUMNS,
    LATENCY_BUCKETS_MS,
    LATENCY_COLUMNS,
    RollupKey,
    RollupRow,
    contribution,
)


@dataclass(frozen=True, slots=True)
class Rolled:
    """A final ledger row as its rollup sees it: its key and what it adds there."""

    key: RollupKey
    account_slug: str
    counts: Mapping[str, int]


# The columns a final row's rollup contribution is computed from.
ROLLED = (
    LlmRequest.account_id,
    LlmRequest.account_slug,
    LlmRequest.created_at,
    LlmRequest.agent_slug,
    LlmRequest.provider,
    LlmRequest.model,
    LlmRequest.status,
    LlmRequest.error_class,
    LlmRequest.input_tokens,
    LlmRequest.output_tokens,
    LlmRequest.cached_tokens,
    LlmRequest.cost_nano_usd,
    LlmRequest.priced,
    LlmRequest.usage_source,
    LlmRequest.latency_ms,
)


def rolled(row: Any) -> Rolled:
    """The rollup contribution of a row (a ``Row``) read with the ``ROLLED`` columns."""
    return Rolled(
        key=RollupKey.of(
            account_id=row.account_id,
            created_at=row.created_at,
            agent_slug=row.agent_slug,
            provider=row.provider,
            model=row.model,
            status=row.status,
            error_class=row.error_class,
        ),
        account_slug=row.account_slug,
        counts=contribution(
            input_tokens=int(row.input_tokens),
            output_tokens=int(row.output_tokens),
            cached_tokens=int(row.cached_tokens),
            cost_nano_usd=int(row.cost_nano_usd),
            priced=bool(row.priced),
            usage_source=row.usage_source,
            latency_ms=None if row.latency_ms is None else int(row.latency_ms),
        ),
    )


def utc_day_of(column: Any, dialect: str) -> ColumnElement[Any]:
    """The UTC date of a ``UTCDateTime`` column, in SQL: what :func:`rollup.utc_day` computes in
    Python. SQLite stores the naive UTC time (its ``date()`` is the UTC date); PostgreSQL
    stores ``timestamptz``, whose plain cast to ``date`` would follow the session's TimeZone.
    The literal (not a bound parameter) keeps the expression identical in SELECT and GROUP BY."""
    if dialect == "postgresql":
        return cast(func.timezone(literal_column("'UTC'"), column), Date)
    return func.date(column, type_=Date)


_ROW_COLUMNS = (*KEY_COLUMNS, "account_slug", *COUNTERS)


def _rollup_row(v: Sequence[Any]) -> RollupRow:
    """A ``RollupRow`` from integer values in ``_ROW_COLUMNS`` order. Positional and without
    intermediate objects: it runs once per row of every rollup read (a 30-day read of every
    account is thousands of rows, and allocations are what trigger the garbage collector)."""
    return RollupRow(
        v[1], v[0], v[7], v[2], v[3], v[4], v[5], v[6],
        v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17], v[18], v[19],
        latency_buckets=tuple(v[20:]),
    )  # fmt: skip


def _ledger_row(values: Sequence[Any]) -> RollupRow:
    """A ``RollupRow`` from the ledger's aggregation (PostgreSQL sums bigints as numeric)."""
    return _rollup_row([*values[:8], *(int(value) for value in values[8:])])


assert len(_ROW_COLUMNS) == 20 + len(LATENCY_COLUMNS)  # the indexes above


_UPSERTS: dict[str, Any] = {}


def _upsert(uow: UnitOfWork) -> Any:
    """The dialect's ``INSERT INTO usage_daily … ON CONFLICT (key) DO UPDATE SET c = c +
    excluded.c`` without its values, built once (its SET clause is the costly part to build)."""
    found = _UPSERTS.get(uow.dialect)
    if found is None:
        insert = dialect_insert(uow, UsageDaily)
        found = _UPSERTS[uow.dialect] = insert.on_conflict_do_update(
            index_elements=list(KEY_COLUMNS),
            set_={name: getattr(UsageDaily, name) + insert.excluded[name] for name in COUNTERS},
        )
    return found


class RollupRepository:
    """``usage_daily``: increments in the unit of work that changes the ledger rows they sum,
    reads, and the aggregation of the ledger it must equal. Never commits."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def add(
        self, deltas: Mapping[RollupKey, Mapping[str, int]], *, slugs: Mapping[uuid.UUID, str]
    ) -> None:
        """Add ``deltas`` to their rows (created at zero when missing): ``INSERT … ON CONFLICT
        (key) DO UPDATE SET c = c + excluded.c``, one statement per key (one statement object,
        its values passed as parameters: compiled once; a multi-row VALUES is never cached),
        keys in sorted order — the one lock order of every writer, so two transactions never
        wait on each other in a cycle."""
        upsert = _upsert(self._uow)
        for key in sorted(deltas):
            values = {**key.values(), "account_slug": slugs[key.account_id], **deltas[key]}
            await self._uow.session.execute(upsert, values)

    async def drop_empty(self, key: RollupKey) -> None:
        """Delete ``key``'s row if every counter is zero (all its calls moved to another key)."""
        await self._uow.session.execute(
            delete(UsageDaily).where(
                *(getattr(UsageDaily, name) == value for name, value in key.values().items()),
                *(getattr(UsageDaily, name) == 0 for name in COUNTERS),
            )
        )

    def _columns(self) -> list[Any]:
        return [getattr(UsageDaily, name) for name in _ROW_COLUMNS]

    def rows_statement(self, *, since: date, until: date) -> Select[Any]:
        """Stored rows with ``since <= day < until``, by day and key: of the unit of work's
        account (the primary key's range; the filter is written out as well as applied by the
        scope), or of every account across accounts (``ix_usage_daily_day``)."""
        statement = select(*self._columns()).where(UsageDaily.day >= since, UsageDaily.day < until)
        if self._uow.scope is not None:
            statement = statement.where(UsageDaily.account_id == self._uow.scope.id)
        return statement.order_by(
            UsageDaily.day, *(getattr(UsageDaily, c) for c in KEY_COLUMNS if c != "day")
        )

    async def rows(self, *, since: date, until: date) -> list[RollupRow]:
        statement = self.rows_statement(since=since, until=until)
        return [_rollup_row(row) for row in await self._uow.session.execute(statement)]

    async def stored(self, account_ids: list[uuid.UUID] | None) -> list[RollupRow]:
        statement = select(*self._columns())
        if account_ids is not None:
            statement = statement.where(UsageDaily.account_id.in_(account_ids))
        return [_rollup_row(row) for row in await self._uow.session.execute(statement)]

    def aggregation(self, account_ids: list[uuid.UUID] | None) -> Select[Any]:
        """The rollup computed from the ledger's final rows, in ``_ROW_COLUMNS`` order."""
        r = LlmRequest
        day = utc_day_of(r.created_at, self._uow.dialect)
        agent = func.coalesce(r.agent_slug, literal_column("''"))
        error_class = func.coalesce(r.error_class, literal_column("''"))
        estimated = r.usage_source == "estimated"
        latency = r.latency_ms

        def total(column: Any, where: ColumnElement[bool] | None = None) -> Any:
            summed = func.sum(column) if where is None else func.sum(column).filter(where)
            return func.coalesce(summed, 0)

        buckets: list[Any] = []
        lower: int | None = None
        for bound in LATENCY_BUCKETS_MS:
            inside = latency <= bound if lower is None else and_(latency > lower, latency <= bound)
            buckets.append(func.count(r.id).filter(inside))
            lower = bound
        buckets.append(func.count(r.id).filter(latency > LATENCY_BUCKETS_MS[-1]))
        key = (r.account_id, day, agent, r.provider, r.model, r.status, error_class)
        statement = (
            select(
                *key,
                func.max(r.account_slug),
                func.count(r.id),
                total(r.input_tokens),
                total(r.output_tokens),
                total(r.cached_tokens),
                total(r.cost_nano_usd),
                func.count(r.id).filter(r.priced.is_(False)),
                func.count(r.id).filter(estimated),
                total(r.input_tokens, estimated),
                total(r.output_tokens, estimated),
                total(r.cost_nano_usd, estimated),
                func.count(latency),
                total(latency),
                *buckets,
            )
            .where(r.status != "pending")
            .group_by(*key)
        )
        if account_ids is not None:
            statement = statement.where(r.account_id.in_(account_ids))
        return statement

    async def from_ledger(self, account_ids: list[uuid.UUID] | None) -> list[RollupRow]:
        result = await self._uow.session.execute(self.aggregation(account_ids))
        return [_ledger_row(row) for row in result]

    async def snapshot(self) -> None:
        """Make the rest of this (read) transaction one snapshot. PostgreSQL: REPEATABLE READ,
        which must be the transaction's first statement; SQLite: a read transaction already
        sees one snapshot (WAL) from its first read."""
        if self._uow.dialect == "postgresql":
            await self._uow.session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))

    async def rebuild(self, account_ids: list[uuid.UUID] | None) -> int:
        """Replace the rows (of ``account_ids``, or all) with the ledger's aggregation; the rows
        written. On PostgreSQL the table is locked first (EXCLUSIVE: reads go on, writers wait),
        so no settlement commits an increment between the delete and the insert's snapshot."""
        session = self._uow.session
        if self._uow.dialect == "postgresql":
            await session.execute(text("LOCK TABLE usage_daily IN EXCLUSIVE MODE"))
        removal = delete(UsageDaily)
        if account_ids is not None:
            removal = removal.where(UsageDaily.account_id.in_(account_ids))
        await session.execute(removal)
        result = await session.execute(
            insert(UsageDaily).from_select(list(_ROW_COLUMNS), self.aggregation(account_ids))
        )
        written = int(getattr(result, "rowcount", -1))
        if written < 0:  # pragma: no cover - both drivers report it
            counted = select(func.count()).select_from(UsageDaily)
            if account_ids is not None:
                counted = counted.where(UsageDaily.account_id.in_(account_ids))
            written = int((await session.execute(counted)).scalar_one())
        return written
