"""SQLite runs in WAL with busy_timeout, foreign keys and synchronous=NORMAL, and a write unit
of work takes the write lock at BEGIN (IMMEDIATE), so it never fails upgrading a read lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from switchboard.bootstrap import build_container
from switchboard.db.migrate import upgrade
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
