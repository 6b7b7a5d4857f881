"""Owners of ledger rows. Every process that makes provider calls holds a lease row, renewed
every heartbeat; every pending ledger row names its owner. The sweeper interrupts a pending row
only once its owner's lease has expired — the process died (or lost the database for longer
than the lease) — never because a call is long.

Expiry is judged on each process's own clock: machines sharing a database must keep their
clocks in sync (NTP), well within the lease TTL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, insert, select, update

from switchboard.db.base import utcnow
from switchboard.db.uow import UnitOfWork, UnitOfWorkFactory
from switchboard.errors import SwitchboardError
from switchboard.ledger.models import ProcessLease
from switchboard.periodic import every

log = logging.getLogger("switchboard.ledger")


class LeaseRepository:
    """Lease rows; global (not scoped to an account). Never commits."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def register(self, owner_id: uuid.UUID, *, now: datetime, ttl_s: float) -> None:
        await self._uow.session.execute(
            insert(ProcessLease).values(
                owner_id=owner_id,
                host=platform.node()[:255] or "unknown",
                pid=os.getpid(),
                started_at=now,
                heartbeat_at=now,
                expires_at=now + timedelta(seconds=ttl_s),
            )
        )

    @staticmethod
    def expired(at: datetime) -> Select[Any]:
        """The owners whose lease has expired by ``at`` (dead processes), as a subquery for
        other tables' sweeps."""
        return select(ProcessLease.owner_id).where(ProcessLease.expires_at < at)

    async def renew(self, owner_id: uuid.UUID, *, now: datetime, expires_at: datetime) -> bool:
        result = await self._uow.session.execute(
            update(ProcessLease)
            .where(ProcessLease.owner_id == owner_id)
            .values(heartbeat_at=now, expires_at=expires_at)
        )
        return bool(getattr(result, "rowcount", 0))


class OwnerLease:
    """This process's lease: registered on first use (or at start-up), renewed in the
    background, released (expired at once) at shutdown."""

    def __init__(self, uow: UnitOfWorkFactory, *, ttl_s: float, heartbeat_s: float) -> None:
        self.owner_id = uuid.uuid4()
        self.ttl_s = ttl_s
        self._uow = uow
        self._heartbeat_s = heartbeat_s
        self._registered = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._expires_at: datetime | None = None

    async def ensure(self) -> uuid.UUID:
        """The owner id, once the lease row is committed (before any row names it)."""
        if not self._registered:
            async with self._lock:
                if not self._registered:
                    await self._write(utcnow())
                    self._registered = True
                    self._task = asyncio.create_task(self._heartbeat(), name="ledger-lease")
        return self.owner_id

    async def renew(self) -> None:
        """Push the expiry one TTL ahead (re-registering if the row is gone)."""
        now = utcnow()
        if self._expires_at is not None and self._expires_at < now:
            log.warning(
                "lease %s had expired (%s): its pending calls may have been swept; their "
                "settlements will restore the provider's usage",
                self.owner_id,
                self._expires_at.isoformat(),
            )
        await self._write(now)

    async def _write(self, now: datetime) -> None:
        """Renew the lease row to ``now`` + TTL, or register it if it is missing."""
        expires_at = now + timedelta(seconds=self.ttl_s)

        async def op(u: UnitOfWork) -> None:
            repo = LeaseRepository(u)
            if not await repo.renew(self.owner_id, now=now, expires_at=expires_at):
                await repo.register(self.owner_id, now=now, ttl_s=self.ttl_s)

        await self._uow.run(op)
        self._expires_at = expires_at

    @property
    def registered(self) -> bool:
        return self._registered

    async def _heartbeat(self) -> None:
        await every(self._heartbeat_s, self.renew, what="lease heartbeat", log=log)

    async def release(self) -> None:
        """At shutdown, after in-flight settlements: expire the lease now, so anything left
        pending is swept at once by the next sweep of any process."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not self._registered:
            return
        now = utcnow()

        async def op(u: UnitOfWork) -> None:
            await LeaseRepository(u).renew(self.owner_id, now=now, expires_at=now)

        try:
            await self._uow.run(op)
        except SwitchboardError as exc:
            log.warning("could not release lease %s: %s", self.owner_id, exc)
        self._registered = False
