"""The usage rollup's reads and upkeep, as methods of :class:`~switchboard.ledger.service.
LedgerService` (``container.ledger.rollup(…)``). The rollup itself is written by the ledger's
own state changes (``LedgerService.finish`` and ``sweep``), never here, except by
:meth:`RollupReports.rebuild_rollup`, the operator's repair."""

from __future__ import annotations

import uuid
from datetime import date

from switchboard.db.uow import AccountScope, CrossAccount, UnitOfWork, UnitOfWorkFactory
from switchboard.ledger.rollup import RollupCheck, RollupMismatch, RollupRow, compare
from switchboard.ledger.rollup_repository import RollupRepository


class RollupReports:
    """Mixed into ``LedgerService``: each method is one unit of work."""

    _uow: UnitOfWorkFactory

    async def rollup(
        self, scope: AccountScope | None, *, since: date, until: date
    ) -> list[RollupRow]:
        """The stored rollup rows with ``since <= day < until`` (UTC days), of the account
        ``scope`` or, with ``None``, of every account; one row per key, by day then key, not
        summed further. Reads ``usage_daily`` only, never the ledger."""

        async def op(u: UnitOfWork) -> list[RollupRow]:
            return await RollupRepository(u).rows(since=since, until=until)

        access = scope or CrossAccount("usage rollup of every account (operator report)")
        return await self._uow.run(op, scope=access, write=False)

    async def rebuild_rollup(self, *, account_ids: list[uuid.UUID] | None = None) -> int:
        """Recompute the rollup (of ``account_ids``, every account by default) from the ledger's
        final rows, in one unit of work: delete, then ``INSERT … SELECT … GROUP BY``. On
        PostgreSQL the table is locked against writers first (settlements wait, reads go on).
        Returns the rows written."""

        async def op(u: UnitOfWork) -> int:
            return await RollupRepository(u).rebuild(account_ids)

        reason = "rollup rebuild: recomputes usage_daily of the given accounts from the ledger"
        return await self._uow.run(op, scope=CrossAccount(reason))

    async def verify_rollup(
        self, *, account_ids: list[uuid.UUID] | None = None
    ) -> list[RollupMismatch]:
        """The keys where the stored rollup differs from the ledger's aggregation (of
        ``account_ids``, every account by default); empty when they are equal."""
        return (await self.check_rollup(account_ids=account_ids)).mismatches

    async def check_rollup(self, *, account_ids: list[uuid.UUID] | None = None) -> RollupCheck:
        """:meth:`verify_rollup` with the number of keys compared: the stored rows and the
        ledger's aggregation read in one snapshot (PostgreSQL: a REPEATABLE READ transaction;
        SQLite: one read transaction, a snapshot under WAL)."""

        async def op(u: UnitOfWork) -> RollupCheck:
            repo = RollupRepository(u)
            await repo.snapshot()
            return compare(await repo.stored(account_ids), await repo.from_ledger(account_ids))

        reason = "rollup verification: usage_daily against the ledger, of the given accounts"
        return await self._uow.run(op, scope=CrossAccount(reason), write=False)
