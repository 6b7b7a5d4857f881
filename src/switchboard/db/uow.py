"""The unit of work: the only thing in Switchboard that commits.

    async with uow_factory(scope=account) as u:
        ...                      # repositories built on ``u``
        await u.commit()         # leaving without commit rolls back

    result = await uow_factory.run(operation, scope=account)   # retried on transient errors

A unit of work belongs to the asyncio task that opened it: touching its session from any other
task raises at once, so two concurrent tasks can never share a session (the failure mode that
breaks cost tracking when parallel tool calls share one).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from switchboard.db.engine import READ_ONLY_OPTION
from switchboard.db.errors import translate_db_error
from switchboard.errors import DatabaseBusy, FatalError
from switchboard.retry import RetryPolicy

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AccountScope:
    """The tenant a unit of work is bound to; repositories filter and stamp every row with it."""

    id: uuid.UUID
    slug: str


class UnitOfWorkMisuse(FatalError):
    default_code = "UNIT_OF_WORK_MISUSE"


class UnitOfWork:
    def __init__(
        self,
        session: AsyncSession,
        *,
        scope: AccountScope | None,
        write: bool,
        owner: asyncio.Task[object] | None = None,
        is_view: bool = False,
    ) -> None:
        self._session = session
        self._owner = owner or asyncio.current_task()
        self._is_view = is_view
        self.scope = scope
        self.write = write
        self.committed = False

    def bound_to(self, scope: AccountScope) -> UnitOfWork:
        """A view on the same transaction bound to another account (for operations such as
        ``apply`` that span accounts atomically). Only the original commits."""
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
        return self._session

    @property
    def account(self) -> AccountScope:
        if self.scope is None:
            raise UnitOfWorkMisuse("this operation needs a unit of work bound to an account")
        return self.scope

    @property
    def dialect(self) -> str:
        return self._session.bind.dialect.name if self._session.bind is not None else ""

    async def commit(self) -> None:
        if not self.write or self._is_view:
            raise UnitOfWorkMisuse("only the unit of work that was opened for writing commits")
        await self.session.commit()
        self.committed = True


class UnitOfWorkFactory:
    """Opens units of work on one engine. Holds no session itself: safe to share everywhere."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retry: RetryPolicy,
        lock_timeout_s: float,
    ) -> None:
        self.engine = engine
        self.retry = retry
        self._is_sqlite = engine.dialect.name == "sqlite"
        self._write_sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(
            engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False
        )
        # SQLite admits one writer at a time; queueing writers of this process in FIFO order
        # here (instead of inside SQLite's busy handler) keeps the tail latency low.
        self._sqlite_writer = asyncio.Lock() if self._is_sqlite else None
        self._lock_timeout_s = lock_timeout_s
        self.dialect = engine.dialect.name

    @asynccontextmanager
    async def __call__(
        self, *, scope: AccountScope | None = None, write: bool = True
    ) -> AsyncIterator[UnitOfWork]:
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
        scope: AccountScope | None = None,
        write: bool = True,
    ) -> T:
        """Run ``operation`` in a fresh unit of work, committing when it returns (for writes).

        The whole unit of work is retried on transient errors with backoff and full jitter;
        ``operation`` must therefore have no side effects outside the database.
        """
        async for attempt in self.retry.retrying():
            with attempt:
                async with self(scope=scope, write=write) as uow:
                    result = await operation(uow)
                    if write:
                        await uow.commit()
                return result
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover
