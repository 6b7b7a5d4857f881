"""SQLAlchemy's aiosqlite adapter, one thread hop per statement and none wasted.

aiosqlite runs every call of the ``sqlite3`` API on its connection's own thread; each call is a
hop there and back (a queue put, a wake-up of the event loop through its self-pipe). SQLAlchemy's
adapter makes three or four of them per statement: open a cursor, execute, fetch the rows, close
the cursor (a read unit of work with one statement: 8 hops; with this adapter 2; see
docs/benchmarks.md for what it saves per chat). This adapter does the same work in one hop: the
cursor is opened, executed, read and closed inside one function run on aiosqlite's thread, and
its results (description, rows, rowcount, lastrowid) are kept on the adapter's cursor.

Two more hops per transaction are saved, without changing what SQLite is asked to do:

- ``BEGIN`` / ``BEGIN IMMEDIATE`` (handed over by ``db.engine``'s begin event through
  :meth:`OneHopConnection.begin`) is sent in the same hop as the transaction's first statement,
  so the lock is taken before that statement runs, as before. A transaction that runs no
  statement sends neither ``BEGIN`` nor its end.
- The connection knows whether SQLite has a transaction open (``in_transaction``, read on the
  thread after every statement), so the pool's rollback-on-return after a commit or rollback —
  which has nothing to roll back — costs no hop.

Everything else — connections, errors, pooling, server-side cursors — is SQLAlchemy's and
aiosqlite's own, unchanged. Used by passing :data:`DBAPI` as the engine's ``module``.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

_Result = tuple[Any, list[Any], int, int | None, bool]
_BEGINS = frozenset({"BEGIN", "BEGIN IMMEDIATE"})


def _run(
    connection: sqlite3.Connection, begin: str | None, operation: str, parameters: Any, many: bool
) -> _Result:
    """On aiosqlite's thread: the whole of one statement (after its transaction's BEGIN), run
    once or, with ``many``, once per parameter set."""
    if begin is not None:
        connection.execute(begin)
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        rows = cursor.fetchall() if cursor.description else []
        return (
            cursor.description,
            rows,
            cursor.rowcount,
            cursor.lastrowid,
            connection.in_transaction,
        )
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose statement runs in one hop; it holds no ``sqlite3`` cursor."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:  # no hop: nothing is opened here
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass  # every row is fetched at once

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._hop(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._hop(operation, seq_of_parameters, many=True)

    async def _hop(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection: OneHopConnection = self._adapt_connection  # type: ignore[assignment]
        async with connection._execute_mutex:
            driver: Any = self._connection  # aiosqlite.Connection; _execute is untyped
            begin, connection.pending_begin = connection.pending_begin, None
            try:
                result: _Result = await driver._execute(
                    _run, driver._conn, begin, operation, parameters, many
                )
            except BaseException:
                connection.in_transaction = True  # unknown: let rollback find out
                raise
            self._description, rows, self._rowcount, self._lastrowid, open_ = result
            connection.in_transaction = open_
            self._rows = collections.deque(rows)

    async def _async_soft_close(self) -> None:
        return  # nothing is open between statements

    def close(self) -> None:
        self._rows.clear()

    def nextset(self) -> None:
        raise NotImplementedError("sqlite3 has no multiple result sets")

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("in_transaction", "pending_begin")
    _cursor_cls = OneHopCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.in_transaction = False  # whether SQLite has a transaction open, as last seen
        self.pending_begin: str | None = None  # a BEGIN not sent yet

    def begin(self, statement: str) -> None:
        """Begin a transaction with ``statement`` (``BEGIN`` or ``BEGIN IMMEDIATE``): it is sent
        in the same trip as the transaction's first statement."""
        if statement not in _BEGINS:
            raise ValueError(f"not a BEGIN statement: {statement!r}")
        self.pending_begin = statement

    def commit(self) -> None:
        self.pending_begin = None  # an empty transaction: nothing to end
        if self.in_transaction:
            super().commit()
            self.in_transaction = False

    def rollback(self) -> None:
        self.pending_begin = None
        if self.in_transaction:
            super().rollback()
            self.in_transaction = False


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        connection = super().connect(*arg, **kw)
        return OneHopConnection(self, connection._connection)


DBAPI = OneHopDBAPI(aiosqlite, sqlite3)
