"""Engine construction: SQLite pragmas and transaction mode, PostgreSQL pool settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from switchboard.db import sqlite_driver
from switchboard.settings import Settings

# Execution option a read-only unit of work sets so SQLite begins with a deferred BEGIN.
READ_ONLY_OPTION = "switchboard_read_only"


def sqlite_path(database_url: str) -> Path | None:
    """The file behind an SQLite URL (``None`` for other backends and in-memory databases)."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite"):
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def ensure_private_directory(path: Path) -> None:
    """Create ``path`` (and missing parents) readable by its owner only (0700). An existing
    folder keeps the mode its owner gave it."""
    if path.is_dir():
        return
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)  # mkdir's mode is filtered by the umask; this one is exact


def ensure_sqlite_directory(database_url: str) -> None:
    """Create the folder of an SQLite file (0700) and the file itself (0600), so that every
    tenant's conversations are never readable by other users of the machine. SQLite creates the
    ``-wal`` and ``-shm`` files with the mode of the database file. Call it off the event loop."""
    path = sqlite_path(database_url)
    if path is None:
        return
    ensure_private_directory(path.parent)
    try:
        # An empty file is a valid empty database; O_EXCL never touches an existing one.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return
    path.chmod(0o600)  # exact, whatever the umask


def create_engine(settings: Settings) -> AsyncEngine:
    common: dict[str, Any] = {
        "echo": settings.db_echo,
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_s,
        "pool_pre_ping": settings.db_pool_pre_ping,
        "pool_recycle": settings.db_pool_recycle_s,
    }
    if not settings.is_sqlite:
        return create_async_engine(settings.database_url, **common)
    # A local file connection cannot be dropped by a network: pinging it costs a round trip
    # through aiosqlite's thread on every checkout for nothing.
    sqlite: dict[str, Any] = {"pool_pre_ping": False}
    if make_url(settings.database_url).get_driver_name() == "aiosqlite":
        sqlite["module"] = sqlite_driver.DBAPI  # one thread hop per statement, not three or four
    engine = create_async_engine(settings.database_url, **(common | sqlite))
    _configure_sqlite(engine, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    return engine


def _configure_sqlite(engine: AsyncEngine, *, busy_timeout_ms: int) -> None:
    """WAL, busy_timeout, foreign keys, synchronous=NORMAL; we emit BEGIN ourselves.

    Writes begin with ``BEGIN IMMEDIATE`` so a transaction never fails upgrading a read lock to
    a write lock; read-only units of work begin with a deferred ``BEGIN`` and never block writers.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver must not open transactions itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY_OPTION, False)
        begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"
        driver = conn.connection.dbapi_connection
        if isinstance(driver, sqlite_driver.OneHopConnection):
            driver.begin(begin)  # sent with the first statement, without a statement of its own
        else:
            conn.exec_driver_sql(begin)
