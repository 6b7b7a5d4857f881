"""SQLite runs in WAL with busy_timeout, foreign keys and synchronous=NORMAL, and a write unit
of work takes the write lock at BEGIN (IMMEDIATE), so it never fails upgrading a read lock."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from switchboard.bootstrap import build_container
from switchboard.db.migrate import upgrade
from switchboard.db.uow import UnitOfWork
from switchboard.errors import DatabaseBusy
from tests.conftest import make_settings


@pytest.fixture
async def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}"
    await asyncio.to_thread(upgrade, url)
    return url


async def test_pragmas(sqlite_url: str) -> None:
    container = await build_container(make_settings(sqlite_url))
    try:
        async with container.uow(write=False) as u:
            values = {
                name: (await u.session.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
            }
    finally:
        await container.aclose()
    assert values == {
        "journal_mode": "wal",
        "busy_timeout": 5000,
        "foreign_keys": 1,
        "synchronous": 1,
    }


async def test_write_units_of_work_take_the_write_lock_at_begin(sqlite_url: str) -> None:
    """A second process (here: a second engine with busy_timeout 0) cannot start writing while a
    write unit of work that has only *read* so far is open — proof of BEGIN IMMEDIATE. A read-only
    unit of work (deferred BEGIN) blocks nobody."""
    first = await build_container(make_settings(sqlite_url))
    other = await build_container(
        make_settings(sqlite_url, sqlite_busy_timeout_ms=0, db_retry_attempts=1)
    )
    try:
        async with first.uow(write=False) as reader:
            await reader.session.execute(text("SELECT count(*) FROM accounts"))
            async with other.uow() as writer:  # readers do not block writers in WAL
                await writer.session.execute(text("SELECT 1"))
        async with first.uow() as u:
            await u.session.execute(text("SELECT count(*) FROM accounts"))  # a read, no write yet
            with pytest.raises(DatabaseBusy):
                async with other.uow() as blocked:
                    await blocked.session.execute(text("SELECT 1"))
    finally:
        await first.aclose()
        await other.aclose()


async def test_foreign_keys_are_enforced(sqlite_url: str) -> None:
    container = await build_container(make_settings(sqlite_url))
    try:
        from sqlalchemy.exc import IntegrityError

        with pytest.raises(IntegrityError):
            async with container.uow() as u:
                await u.session.execute(
                    text(
                        "INSERT INTO api_keys (id, account_id, prefix, key_hash, created_at) "
                        "VALUES ('00000000000000000000000000000001', "
                        "'00000000000000000000000000000002', 'p', 'h', '2026-01-01')"
                    )
                )
    finally:
        await container.aclose()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every trip to an aiosqlite connection's thread, by what it ran."""
    trips: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return trips


async def test_one_thread_hop_per_statement_and_none_wasted(
    sqlite_url: str, hops: list[str]
) -> None:
    """Each statement is one trip to aiosqlite's thread (SQLAlchemy's own adapter makes three
    or four); BEGIN travels with the first statement; a transaction that ran nothing costs no
    trip; the pool's rollback after a commit is not sent."""
    container = await build_container(make_settings(sqlite_url))
    try:
        await container.uow.run(_select_one, write=False)  # connect, warm up
        hops.clear()

        async def three(u: UnitOfWork) -> None:
            for _ in range(3):
                await _select_one(u)

        await container.uow.run(three)
        assert hops == ["_run", "_run", "_run", "commit"]
        hops.clear()
        await container.uow.run(_select_one, write=False)
        assert hops == ["_run", "rollback"]
        hops.clear()

        async def begun(u: UnitOfWork) -> None:
            await u.session.connection()  # BEGIN IMMEDIATE issued, no statement after it

        await container.uow.run(begun)
        assert hops == []
    finally:
        await container.aclose()


async def test_a_failed_statement_rolls_back_its_transaction(sqlite_url: str) -> None:
    """An error mid-transaction rolls back what the transaction wrote, and the connection goes
    back to the pool clean: the next unit of work on it writes and commits normally."""
    container = await build_container(make_settings(sqlite_url, db_pool_size=1))
    insert = (
        "INSERT INTO accounts (id, slug, name, created_at, updated_at) "
        "VALUES (:id, :slug, 'n', '2026-01-01', '2026-01-01')"
    )
    try:

        async def twice(u: UnitOfWork) -> None:
            await u.session.execute(text(insert), {"id": uuid.UUID(int=1).hex, "slug": "first"})
            await u.session.execute(text(insert), {"id": uuid.UUID(int=1).hex, "slug": "again"})

        with pytest.raises(IntegrityError):
            await container.uow.run(twice)

        async def once(u: UnitOfWork) -> None:
            await u.session.execute(text(insert), {"id": uuid.UUID(int=2).hex, "slug": "second"})

        await container.uow.run(once)

        async def slugs(u: UnitOfWork) -> list[str]:
            return list((await u.session.execute(text("SELECT slug FROM accounts"))).scalars())

        assert await container.uow.run(slugs, write=False) == ["second"]
    finally:
        await container.aclose()


async def _select_one(u: UnitOfWork) -> None:
    await u.session.execute(text("SELECT 1"))
