"""Agent memories. Each call opens its own unit of work: tools call this concurrently."""

from __future__ import annotations

from sqlalchemy import select

from switchboard.db.base import utcnow
from switchboard.db.uow import AccountScope, UnitOfWork, UnitOfWorkFactory
from switchboard.db.upsert import dialect_insert
from switchboard.memories.models import Memory


class MemoryService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def remember(self, scope: AccountScope, *, agent: str, key: str, value: str) -> None:
        async def op(u: UnitOfWork) -> None:
            now = utcnow()
            statement = dialect_insert(u, Memory).values(
                account_id=u.account.id, agent_slug=agent, key=key, value=value, updated_at=now
            )
            await u.session.execute(
                statement.on_conflict_do_update(
                    index_elements=["account_id", "agent_slug", "key"],
                    set_={"value": value, "updated_at": now},
                )
            )

        await self._uow.run(op, scope=scope)

    async def recall(self, scope: AccountScope, *, agent: str, key: str) -> str | None:
        async def op(u: UnitOfWork) -> str | None:
            result = await u.session.execute(
                select(Memory.value).where(
                    Memory.account_id == u.account.id, Memory.agent_slug == agent, Memory.key == key
                )
            )
            return result.scalar_one_or_none()

        return await self._uow.run(op, scope=scope, write=False)
