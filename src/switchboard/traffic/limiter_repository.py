"""Queries of the limits shared through the database (:mod:`switchboard.traffic.db_limiter`).
Global rows, not scoped to an account. Never commits.

Every check-and-record below runs inside one write transaction that holds the key's lock
(:meth:`SharedLimitRepository.lock`): SQLite's write transaction already holds the database's
only write lock (``BEGIN IMMEDIATE``); PostgreSQL takes a transaction-level advisory lock on the
key, so two processes never both count the same free slot."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update

from switchboard.db.uow import UnitOfWork
from switchboard.traffic.models import LimiterHit, LimiterSlot

WINDOW = timedelta(seconds=60)
# pg_advisory_xact_lock(space, key): the two-integer key space (apart from the one-bigint keys
# of the seed lock); the space is the first 4 bytes of sha256("switchboard:limits").
LOCK_SPACE = int.from_bytes(hashlib.sha256(b"switchboard:limits").digest()[:4], "big", signed=True)


def lock_key(name: str) -> int:
    """A 32-bit key for ``name`` (two names that collide only share a lock, never a limit)."""
    digest = hashlib.blake2b(name.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True, slots=True)
class Window:
    """A key's hits in the last 60 s: how many, their tokens, and when the oldest was made."""

    hits: int
    tokens: int
    oldest: datetime | None


class SharedLimitRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def lock(self, name: str) -> None:
        """Hold ``name``'s lock until the transaction ends. SQLite: nothing to do, the write
        transaction is the lock (one writer at a time)."""
        if self._uow.dialect == "postgresql":
            await self._uow.session.execute(
                select(func.pg_advisory_xact_lock(LOCK_SPACE, lock_key(name)))
            )

    # --- concurrency slots ----------------------------------------------------------------

    async def live_slots(self, key: str, *, now: datetime) -> int:
        statement = select(func.count()).where(LimiterSlot.key == key, LimiterSlot.expires_at > now)
        return int(await self._uow.session.scalar(statement) or 0)

    async def acquire(
        self, key: str, member: str, *, owner: str, limit: int, now: datetime, ttl: timedelta
    ) -> bool:
        """Take a slot of ``key`` if fewer than ``limit`` live ones are held (expired leases,
        of processes that died, are deleted first). Call under :meth:`lock`."""
        session = self._uow.session
        await session.execute(
            delete(LimiterSlot).where(LimiterSlot.key == key, LimiterSlot.expires_at <= now)
        )
        held = await session.scalar(select(func.count()).where(LimiterSlot.key == key))
        if int(held or 0) >= limit:
            return False
        await session.execute(
            insert(LimiterSlot).values(key=key, member=member, owner=owner, expires_at=now + ttl)
        )
        return True

    async def renew(self, key: str, member: str, *, expires_at: datetime) -> bool:
        """Push a held lease's expiry forward; False when it is gone (expired and taken back)."""
        result = await self._uow.session.execute(
            update(LimiterSlot)
            .where(LimiterSlot.key == key, LimiterSlot.member == member)
            .values(expires_at=expires_at)
        )
        return bool(getattr(result, "rowcount", 0))

    async def release(self, key: str, member: str) -> None:
        await self._uow.session.execute(
            delete(LimiterSlot).where(LimiterSlot.key == key, LimiterSlot.member == member)
        )

    # --- rate windows ---------------------------------------------------------------------

    async def window(self, key: str, *, now: datetime) -> Window:
        """The key's hits of the last 60 s, after deleting older ones. Call under :meth:`lock`."""
        session = self._uow.session
        await session.execute(
            delete(LimiterHit).where(LimiterHit.key == key, LimiterHit.at <= now - WINDOW)
        )
        row = (
            await session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(LimiterHit.tokens), 0),
                    func.min(LimiterHit.at),
                ).where(LimiterHit.key == key)
            )
        ).one()
        return Window(hits=int(row[0]), tokens=int(row[1]), oldest=row[2])

    async def hit(self, key: str, member: str, *, now: datetime, tokens: int) -> None:
        await self._uow.session.execute(
            insert(LimiterHit).values(key=key, member=member, at=now, tokens=tokens)
        )
