"""A scratch PostgreSQL database for one benchmark run: created from an admin URL, migrated if
asked, always dropped afterwards (``WITH (FORCE)``), so a run leaves nothing behind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url


def _admin_dsn(admin_url: str) -> str:
    return make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _execute(admin_url: str, statement: str) -> None:
    connection = await asyncpg.connect(_admin_dsn(admin_url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@asynccontextmanager
async def scratch_postgres(admin_url: str, prefix: str, *, migrate: bool) -> AsyncIterator[str]:
    """The SQLAlchemy (asyncpg) URL of a new database named ``<prefix>_<random>``; with
    ``migrate``, Switchboard's migrations are applied first (in a thread: Alembic is sync)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    await _execute(admin_url, f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=name)
    try:
        rendered = url.render_as_string(hide_password=False)
        if migrate:
            from switchboard.db.migrate import upgrade

            await asyncio.to_thread(upgrade, rendered)
        yield rendered
    finally:
        await _execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
