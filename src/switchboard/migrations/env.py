"""Alembic environment: async engines, batch mode so migrations also run on SQLite."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import switchboard.models  # noqa: F401 - registers every table on Base.metadata
from switchboard.db.base import Base

config = context.config
target_metadata = Base.metadata


# Backend-specific full-text indexes that the ORM does not describe (migration 0004).
_UNMODELLED_TABLES = ("directory_fts",)
_UNMODELLED_COLUMNS = {("directory_entries", "search_vector")}
_UNMODELLED_INDEXES = {"ix_directory_entries_search_vector"}


def _include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    if type_ == "table" and name is not None and name.startswith(_UNMODELLED_TABLES):
        return False
    if type_ == "column":
        table = getattr(getattr(obj, "table", None), "name", None)
        return (table, name) not in _UNMODELLED_COLUMNS
    return not (type_ == "index" and name in _UNMODELLED_INDEXES)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        include_object=_include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(engine: AsyncEngine) -> None:
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
    finally:
        await engine.dispose()


def run() -> None:
    url = config.attributes.get("database_url")
    if not url:
        raise RuntimeError("alembic_config() sets database_url; run 'switchboard db upgrade'")
    if context.is_offline_mode():
        context.configure(
            url=url, target_metadata=target_metadata, render_as_batch=True, literal_binds=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    # File-system work happens before the loop starts: loading the revision scripts and
    # creating the engine.
    _ = context.script.revision_map.heads
    asyncio.run(_run_async(create_async_engine(url, poolclass=pool.NullPool)))


run()
