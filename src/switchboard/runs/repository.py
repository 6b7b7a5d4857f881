"""Run and run-event statements, scoped to the unit of work's account. Never commits. Every
state change is one conditional update: it says whether it happened."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, insert, or_, select, update
from sqlalchemy.orm import aliased

from switchboard.db.base import utcnow
from switchboard.db.uow import UnitOfWork
from switchboard.db.upsert import dialect_insert
from switchboard.runs.models import ACTIVE_STATUSES, Run, RunEvent
from switchboard.runs.schemas import EventData


class RunRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def insert(self, values: dict[str, Any]) -> bool:
        """Insert a run; ``False`` (nothing written) when its idempotency key exists."""
        statement = (
            dialect_insert(self._uow, Run)
            .values(account_id=self._uow.account.id, **values)
            .on_conflict_do_nothing(index_elements=["account_id", "idempotency_key"])
            .returning(Run.id)
        )
        result = await self._uow.session.execute(statement)
        return result.first() is not None

    async def get(self, run_id: uuid.UUID) -> Run | None:
        result = await self._uow.session.execute(
            select(Run).where(Run.id == run_id).execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def by_key(self, key: str) -> Run | None:
        result = await self._uow.session.execute(select(Run).where(Run.idempotency_key == key))
        return result.scalar_one_or_none()

    async def active(self, conversation_id: uuid.UUID, *, before_seq: int) -> list[Run]:
        """The conversation's pending and running runs queued before ``before_seq``."""
        result = await self._uow.session.execute(
            select(Run)
            .where(
                Run.conversation_id == conversation_id,
                Run.status.in_(ACTIVE_STATUSES),
                Run.queue_seq < before_seq,
            )
            .order_by(Run.queue_seq)
        )
        return list(result.scalars())

    async def start(self, run_id: uuid.UUID, *, now: datetime) -> int | None:
        """pending → running, only if no run of its conversation queued before it is still
        active (the unique partial index backs this up). Returns the run's next event seq."""
        earlier = aliased(Run)
        result = await self._uow.session.execute(
            update(Run)
            .where(
                Run.id == run_id,
                Run.status == "pending",
                ~exists().where(
                    earlier.conversation_id == Run.conversation_id,
                    earlier.status.in_(ACTIVE_STATUSES),
                    earlier.queue_seq < Run.queue_seq,
                ),
            )
            .values(status="running", started_at=now, last_event_seq=Run.last_event_seq + 1)
            .returning(Run.last_event_seq)
            .execution_options(synchronize_session=False)
        )
        seq = result.scalar_one_or_none()
        return None if seq is None else int(seq)

    async def finish(
        self,
        run_id: uuid.UUID,
        *,
        from_statuses: Sequence[str],
        events: int,
        values: dict[str, Any],
    ) -> tuple[int, str | None, datetime] | None:
        """Move a run out of ``from_statuses`` into a final status, reserving ``events`` event
        seqs. Returns (first seq, stop reason, finished at), or None if the run was not in
        those statuses."""
        now = utcnow()
        result = await self._uow.session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status.in_(from_statuses))
            .values(last_event_seq=Run.last_event_seq + events, finished_at=now, **values)
            .returning(Run.last_event_seq, Run.stop_reason)
            .execution_options(synchronize_session=False)
        )
        row = result.first()
        if row is None:
            return None
        return int(row[0]) - events + 1, row[1], now

    async def request_stop(self, run_ids: Sequence[uuid.UUID], reason: str, now: datetime) -> None:
        """Ask running runs to stop (their owner does it); the first reason given stays, except
        that a rollback wins over a cancel."""
        if not run_ids:
            return
        await self._uow.session.execute(
            update(Run)
            .where(
                Run.id.in_(run_ids),
                Run.status == "running",
                or_(Run.stop_reason.is_(None), Run.stop_reason != "rollback"),
            )
            .values(stop_requested_at=now, stop_reason=reason)
            .execution_options(synchronize_session=False)
        )

    async def reserve_events(self, run_id: uuid.UUID, count: int) -> int | None:
        """Reserve ``count`` event seqs of a running run; its first, or None if not running."""
        result = await self._uow.session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == "running")
            .values(last_event_seq=Run.last_event_seq + count)
            .returning(Run.last_event_seq)
            .execution_options(synchronize_session=False)
        )
        last = result.scalar_one_or_none()
        return None if last is None else int(last) - count + 1

    async def add_events(
        self, run_id: uuid.UUID, first_seq: int, events: Sequence[EventData]
    ) -> None:
        if not events:
            return
        now = utcnow()
        account_id = self._uow.account.id
        await self._uow.session.execute(
            insert(RunEvent),
            [
                {
                    "run_id": run_id,
                    "seq": first_seq + offset,
                    "account_id": account_id,
                    "type": kind,
                    "data": data,
                    "created_at": now,
                }
                for offset, (kind, data) in enumerate(events)
            ],
        )

    async def events_after(self, run_id: uuid.UUID, after: int, limit: int) -> list[RunEvent]:
        result = await self._uow.session.execute(
            select(RunEvent)
            .where(RunEvent.run_id == run_id, RunEvent.seq > after)
            .order_by(RunEvent.seq)
            .limit(limit)
        )
        return list(result.scalars())

    async def page(
        self,
        *,
        status: str | None,
        agent: str | None,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Run]:
        """The account's runs, newest first."""
        statement = select(Run)
        if status is not None:
            statement = statement.where(Run.status == status)
        if agent is not None:
            statement = statement.where(Run.agent_slug == agent)
        return await self._newest_first(statement, before=before, limit=limit)

    async def of_conversation(
        self, conversation_id: uuid.UUID, *, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Run]:
        statement = select(Run).where(Run.conversation_id == conversation_id)
        return await self._newest_first(statement, before=before, limit=limit)

    async def _newest_first(
        self,
        statement: Select[Run],
        *,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Run]:
        """Keyset pages on (created_at, id), newest first."""
        if before is not None:
            created, run_id = before
            statement = statement.where(
                or_(Run.created_at < created, and_(Run.created_at == created, Run.id < run_id))
            )
        result = await self._uow.session.execute(
            statement.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)
        )
        return list(result.scalars())

    async def stop_requested(self, run_ids: Sequence[uuid.UUID]) -> list[tuple[uuid.UUID, str]]:
        """Which of these runs (running here) were asked to stop, and why — ``swept`` for one
        whose row is no longer running (another process took its owner for dead)."""
        result = await self._uow.session.execute(
            select(Run.id, Run.status, Run.stop_reason).where(
                Run.id.in_(run_ids),
                or_(Run.status != "running", Run.stop_requested_at.is_not(None)),
            )
        )
        return [(row[0], "swept" if row[1] != "running" else row[2] or "cancel") for row in result]

    async def abandoned(
        self, dead_owners: Select[Any], *, alive: uuid.UUID | None, limit: int
    ) -> list[Run]:
        """Active runs whose owner is among ``dead_owners`` (a subquery), never ``alive``'s
        (the sweeping process itself: a lease that lapsed under load is not a death)."""
        query = select(Run).where(Run.status.in_(ACTIVE_STATUSES), Run.owner_id.in_(dead_owners))
        if alive is not None:
            query = query.where(Run.owner_id != alive)
        result = await self._uow.session.execute(query.limit(limit))
        return list(result.scalars())

    async def forget_keys(self, now: datetime) -> int:
        """Idempotency keys past their retention are released (the runs stay)."""
        result = await self._uow.session.execute(
            update(Run)
            .where(Run.idempotency_expires_at < now)
            .values(idempotency_key=None, idempotency_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)
