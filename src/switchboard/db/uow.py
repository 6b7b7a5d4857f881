"""The unit of work: the only thing in Switchboard that commits, and the tenant boundary.

One idiom writes::

    async def operation(u: UnitOfWork) -> T:
        ...                      # repositories and services' ``*_in`` functions built on ``u``

    result = await uow_factory.run(operation, scope=account)              # commits on return
    rows = await uow_factory.run(read, scope=account, write=False)        # never commits
    await uow_factory.run(sweep, scope=CrossAccount("the sweeper: every account's rows"))

``run`` opens a fresh unit of work, runs ``operation``, commits when it returns (``write=True``)
and retries the whole of it on transient errors; an exception rolls everything back. Nothing
else commits: ``UnitOfWork`` has no public ``commit``, and committing its session any other way
(``u.session.commit()``, ``session.begin()`` blocks) raises ``UnitOfWorkMisuse`` (a
``before_commit`` event). ``async with uow_factory(scope=…) as u:`` remains for reads and tests
that hold a transaction open; leaving it rolls back.

``scope`` binds the unit of work to an account, and every statement it runs is scoped to it
(:mod:`switchboard.db.scoping`): an ``AccountScope``, the explicit ``CrossAccount(reason)`` for the
few operations that span accounts, or ``None`` (no tenant-owned table may be touched then).
``u.bound_to(other)`` is a view on the same transaction whose statements run under ``other``.

A unit of work belongs to the asyncio task that opened it: touching its session from any other
task raises at once, so two concurrent tasks can never share a session (the failure mode that
breaks cost tracking when parallel tool calls share one).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from switchboard.db import scoping
from switchboard.db.engine import READ_ONLY_OPTION
from switchboard.db.errors import translate_db_error
from switchboard.db.scoping import AccountScope, CrossAccount, UnitOfWorkMisuse
from switchboard.errors import DatabaseBusy
from switchboard.retry import RetryPolicy

__all__ = ["AccountScope", "CrossAccount", "UnitOfWork", "UnitOfWorkFactory", "UnitOfWorkMisuse"]

T = TypeVar("T")

_COMMITTING = "switchboard.committing"  # session.info: set while the unit of work commits


@event.listens_for(scoping.ScopedSession, "before_commit")
def _only_the_unit_of_work_commits(session: Session) -> None:
    if not session.info.get(_COMMITTING) and not session.in_nested_transaction():
        raise UnitOfWorkMisuse(
            "only the unit of work commits: return from the operation given to uow.run(…) "
            "and it commits; never commit its session"
        )


class UnitOfWork:
    def __init__(
        self,
        session: AsyncSession,
        *,
        scope: AccountScope | CrossAccount | None,
        write: bool,
        owner: asyncio.Task[object] | None = None,
        is_view: bool = False,
    ) -> None:
        self._session = session
        self._owner = owner or asyncio.current_task()
        self._is_view = is_view
        self._access = scope
        self.scope = scope if isinstance(scope, AccountScope) else None
        self.cross_account = scope if isinstance(scope, CrossAccount) else None
        self.write = write
        self.committed = False
        scoping.bind(session.sync_session, scope)

    def bound_to(self, scope: AccountScope) -> UnitOfWork:
        """A view on the same transaction bound to another account (for operations such as
        ``apply`` that span accounts atomically). Statements run under the scope of whichever
        unit of work or view handed out the session last (each repository call takes it
        afresh); rows a view adds are stamped with its account. Only the original commits."""
        return UnitOfWork(
            self._session, scope=scope, write=self.write, owner=self._owner, is_view=True
        )

    @property
    def session(self) -> AsyncSession:
        if asyncio.current_task() is not self._owner:
            raise UnitOfWorkMisuse(
                "a unit of work was used from a task other than the one that opened it; "
                "open one unit of work per task"
            )
        scoping.activate(self._session.sync_session, self._access)
        return self._session

    @property
    def account(self) -> AccountScope:
        if self.scope is None:
            raise UnitOfWorkMisuse("this operation needs a unit of work bound to an account")
        return self.scope

    @property
    def dialect(self) -> str:
        return self._session.bind.dialect.name if self._session.bind is not None else ""

    async def _commit(self) -> None:
        """Called by :meth:`UnitOfWorkFactory.run` only, when the operation has returned."""
        if not self.write or self._is_view:
            raise UnitOfWorkMisuse("only the unit of work that was opened for writing commits")
        session = self.session
        session.info[_COMMITTING] = True
        try:
            await session.commit()
        finally:
            session.info.pop(_COMMITTING, None)
        self.committed = True


class UnitOfWorkFactory:
    """Opens units of work on one engine. Holds no session itself: safe to share everywhere."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retry: RetryPolicy,
        lock_timeout_s: float,
        insist_max_s: float = 600.0,
    ) -> None:
        self.engine = engine
        self.retry = retry
        self._insisting = retry.insisting(insist_max_s)
        self._is_sqlite = engine.dialect.name == "sqlite"
        self._write_sessions = async_sessionmaker(
            engine, expire_on_commit=False, sync_session_class=scoping.ScopedSession
        )
        self._read_sessions = async_sessionmaker(
            engine.execution_options(**{READ_ONLY_OPTION: True}),
            expire_on_commit=False,
            sync_session_class=scoping.ScopedSession,
        )
        # SQLite admits one writer at a time; queueing writers of this process in FIFO order
        # here (instead of inside SQLite's busy handler) keeps the tail latency low.
        self._sqlite_writer = asyncio.Lock() if self._is_sqlite else None
        self._lock_timeout_s = lock_timeout_s
        self.dialect = engine.dialect.name

    @asynccontextmanager
    async def __call__(
        self, *, scope: AccountScope | CrossAccount | None = None, write: bool = True
    ) -> AsyncIterator[UnitOfWork]:
        """A unit of work that never commits: leaving the block rolls back. Writes go through
        :meth:`run`."""
        lock = self._sqlite_writer if write else None
        if lock is not None:
            try:
                async with asyncio.timeout(self._lock_timeout_s):
                    await lock.acquire()
            except TimeoutError:
                raise DatabaseBusy(
                    "timed out waiting for the database write lock", retry_after_s=1.0
                ) from None
        try:
            maker = self._write_sessions if write else self._read_sessions
            async with maker() as session:
                uow = UnitOfWork(session, scope=scope, write=write)
                try:
                    yield uow
                except Exception as exc:
                    translated = translate_db_error(exc)
                    if translated is not None:
                        raise translated from exc
                    raise
                # Leaving the block closes the session, which rolls back anything uncommitted
                # (without expiring what was loaded, so results stay readable).
        except Exception as exc:  # errors raised while opening or closing the session
            translated = translate_db_error(exc)
            if translated is not None:
                raise translated from exc
            raise
        finally:
            if lock is not None:
                lock.release()

    async def run(
        self,
        operation: Callable[[UnitOfWork], Awaitable[T]],
        *,
        scope: AccountScope | CrossAccount | None = None,
        write: bool = True,
        insist: bool = False,
    ) -> T:
        """Run ``operation`` in a fresh unit of work, committing when it returns (for writes):
        the one place anything commits.

        The whole unit of work is retried on transient errors with backoff and full jitter;
        ``operation`` must therefore have no side effects outside the database. ``insist``
        (writes after a provider call: settling it, storing its turn) keeps retrying for up to
        ``insist_max_s`` rather than a few attempts.
        """
        policy = self._insisting if insist else self.retry
        async for attempt in policy.retrying():
            with attempt:
                async with self(scope=scope, write=write) as uow:
                    result = await operation(uow)
                    if write:
                        await uow._commit()
                return result
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover
