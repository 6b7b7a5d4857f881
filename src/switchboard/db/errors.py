"""Translate driver exceptions into the error taxonomy (transient vs everything else)."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from switchboard.errors import DatabaseBusy, DatabaseUnavailable, TransientError

# PostgreSQL SQLSTATEs worth retrying the whole unit of work for.
_PG_BUSY = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock not available
_PG_UNAVAILABLE_PREFIXES = ("08", "57P")  # connection exceptions, admin shutdown / cannot connect
_SQLITE_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")


def translate_db_error(exc: BaseException) -> TransientError | None:
    """The transient error ``exc`` stands for, or ``None`` when it is not transient."""
    if isinstance(exc, sa_exc.TimeoutError):
        return DatabaseBusy(
            "all database connections are in use; try again shortly", retry_after_s=1.0
        )
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return DatabaseUnavailable("the database connection was lost", retry_after_s=1.0)
        orig = exc.orig
        sqlstate = getattr(orig, "sqlstate", None)
        if isinstance(sqlstate, str):
            if sqlstate in _PG_BUSY:
                return DatabaseBusy(f"database contention ({sqlstate})", retry_after_s=0.1)
            if sqlstate.startswith(_PG_UNAVAILABLE_PREFIXES):
                return DatabaseUnavailable(f"database unavailable ({sqlstate})", retry_after_s=1.0)
        errorname = getattr(orig, "sqlite_errorname", "") or ""
        message = str(orig).lower()
        if errorname.startswith(_SQLITE_BUSY) or "database is locked" in message:
            return DatabaseBusy("the database is locked by another writer", retry_after_s=0.1)
        if isinstance(orig, OSError | ConnectionError):
            return DatabaseUnavailable("cannot reach the database", retry_after_s=1.0)
    if isinstance(exc, OSError | ConnectionError):
        return DatabaseUnavailable("cannot reach the database", retry_after_s=1.0)
    return None
