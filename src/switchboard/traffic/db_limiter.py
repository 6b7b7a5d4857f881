"""Provider limits shared by every process on one database, without Redis
(``SWITCHBOARD_SHARED_LIMITS``; what ``serve --workers N`` uses when Redis is not configured).

* A concurrency slot is a lease: a row of ``limiter_slots`` with an expiry, renewed every third
  of its TTL while the call runs, deleted when it ends. A process that dies stops renewing; its
  slots are taken back by the first acquire after they expire. Nothing holds a slot for ever.
* Taking a slot is one write unit of work under the key's lock (:mod:`.limiter_repository`):
  delete the key's expired leases, count the live ones, insert one if below the limit. Never a
  check in one transaction and an insert in another.
* rpm/tpm are sliding 60-second windows of ``limiter_hits`` rows, checked and recorded in one
  unit of work under the key's lock; a caller over either waits until the oldest hit leaves
  the window.
* Waiters of one process queue in FIFO order locally; the head of the queue polls the
  database (a read first: the write lock is taken only when a slot looks free). Every process's
  head polls at the same jittered pace, so a slot freed by one process is as likely to go to
  another's waiter: no process starves the others.
* Expiry is judged on each process's clock (as for ledger leases): machines sharing a database
  keep their clocks in sync (NTP). Database errors are the unit of work's (``DATABASE_BUSY``,
  ``DATABASE_UNAVAILABLE``): limits fail closed, never silently per process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import platform
import uuid
from contextlib import AbstractAsyncContextManager
from datetime import timedelta

from switchboard.db.base import utcnow
from switchboard.db.uow import UnitOfWork, UnitOfWorkFactory
from switchboard.traffic.limiter import SharedLimiterBase
from switchboard.traffic.limiter_repository import WINDOW, SharedLimitRepository
from switchboard.traffic.limits import LimitSpec

log = logging.getLogger("switchboard.traffic")


class DatabaseLimiter(SharedLimiterBase):
    def __init__(
        self, uow: UnitOfWorkFactory, *, lease_ttl_s: float = 30.0, poll_s: float = 0.02
    ) -> None:
        super().__init__(poll_s=poll_s)
        self._uow = uow
        self._owner = f"{platform.node() or 'unknown'}:{os.getpid()}"[:255]
        self._ttl = timedelta(seconds=lease_ttl_s)
        self._tasks: set[asyncio.Task[None]] = set()  # releases under way (awaited by aclose)

    async def held(self, key: str) -> int:
        """Live leases of ``key`` across all processes (for tests and diagnostics)."""
        return await self._live(key)

    # --- concurrency slots ------------------------------------------------------------------

    def _slot(
        self, spec: LimitSpec, limit: int, deadline: float, started: float
    ) -> AbstractAsyncContextManager[None]:
        member = uuid.uuid4().hex
        return self._leased(
            spec,
            deadline,
            started,
            acquire=lambda first: self._try_acquire(spec.key, member, limit, look_first=not first),
            keep_alive=lambda: self._keep_alive(spec.key, member),
            release=lambda: self._release_soon(spec.key, member),
        )

    async def _try_acquire(self, key: str, member: str, limit: int, *, look_first: bool) -> bool:
        """One try: a read first when polling (no write lock while every slot is held), then
        the atomic acquire. A caller cancelled while the acquire commits does not leak the
        slot: it is released as soon as the acquire is known to have taken it."""
        if look_first and await self._live(key) >= limit:
            return False
        operation = functools.partial(self._acquire, key, member, limit)
        attempt = asyncio.ensure_future(self._uow.run(operation))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            attempt.add_done_callback(functools.partial(self._undo, key, member))
            raise

    async def _live(self, key: str) -> int:
        async def op(u: UnitOfWork) -> int:
            return await SharedLimitRepository(u).live_slots(key, now=utcnow())

        return await self._uow.run(op, write=False)

    async def _acquire(self, key: str, member: str, limit: int, u: UnitOfWork) -> bool:
        repo = SharedLimitRepository(u)
        await repo.lock(f"slots:{key}")
        return await repo.acquire(
            key, member, owner=self._owner, limit=limit, now=utcnow(), ttl=self._ttl
        )

    def _undo(self, key: str, member: str, attempt: asyncio.Future[bool]) -> None:
        if attempt.cancelled() or attempt.exception() is not None or not attempt.result():
            return
        self._release_soon(key, member)

    def _release_soon(self, key: str, member: str) -> asyncio.Task[None]:
        task = asyncio.create_task(self._release(key, member), name="limiter-release")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _release(self, key: str, member: str) -> None:
        async def op(u: UnitOfWork) -> None:
            await SharedLimitRepository(u).release(key, member)

        try:
            await self._uow.run(op)
        except Exception as exc:  # the call is over either way: the lease expires by itself
            log.warning(
                "could not release lease %s of %s (it expires within %.0f s): %s",
                member,
                key,
                self._ttl.total_seconds(),
                exc,
            )

    async def _keep_alive(self, key: str, member: str) -> None:
        while True:
            await asyncio.sleep(self._ttl.total_seconds() / 3)
            try:
                if not await self._uow.run(functools.partial(self._renew, key, member)):
                    log.warning("lease %s of %s had expired and was taken back", member, key)
            except Exception as exc:  # renewing again in a third of the TTL
                log.warning("could not renew lease %s of %s: %s", member, key, exc)

    async def _renew(self, key: str, member: str, u: UnitOfWork) -> bool:
        return await SharedLimitRepository(u).renew(key, member, expires_at=utcnow() + self._ttl)

    # --- rate windows -----------------------------------------------------------------------

    async def _rate(self, spec: LimitSpec, tokens: int, deadline: float, started: float) -> None:
        if not spec.rpm and not spec.tpm:
            return
        member = uuid.uuid4().hex
        counted = min(tokens, spec.tpm) if spec.tpm else tokens
        operation = functools.partial(self._rate_try, spec, member, counted)
        await self._windowed(spec, deadline, started, record=lambda: self._uow.run(operation))

    async def _rate_try(self, spec: LimitSpec, member: str, tokens: int, u: UnitOfWork) -> float:
        """Record a hit if the window has room for it and return 0; else the seconds until the
        oldest hit leaves the window (nothing recorded)."""
        repo = SharedLimitRepository(u)
        await repo.lock(f"rate:{spec.key}")
        now = utcnow()
        window = await repo.window(spec.key, now=now)
        full = bool(spec.rpm and window.hits + 1 > spec.rpm) or bool(
            spec.tpm and window.hits > 0 and window.tokens + tokens > spec.tpm
        )
        if full and window.oldest is not None:
            return max((window.oldest + WINDOW - now).total_seconds(), 0.001)
        await repo.hit(spec.key, member, now=now, tokens=tokens)
        return 0.0

    async def aclose(self) -> None:
        """Wait for the releases under way (their rows deleted before the engine closes)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
