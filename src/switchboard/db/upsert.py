"""Dialect-aware ``INSERT … ON CONFLICT``: the database decides uniqueness, never Python."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Insert, Table
from sqlalchemy.dialects import postgresql, sqlite

from switchboard.db.base import Base
from switchboard.db.uow import UnitOfWork


def dialect_insert(uow: UnitOfWork, model: type[Base] | Table) -> Any:
    """``INSERT`` for the unit of work's dialect, with ``on_conflict_*`` available."""
    if uow.dialect == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


async def insert_ignoring_conflict(
    uow: UnitOfWork,
    model: type[Base],
    values: Mapping[str, object],
    *,
    conflict_columns: Sequence[str],
) -> bool:
    """Insert one row; ``False`` (and nothing written) when it conflicts on ``conflict_columns``.

    Only a conflict on that exact unique key is absorbed; any other violation still raises.
    """
    statement: Insert = (
        dialect_insert(uow, model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(conflict_columns))
        .returning(model.__table__.c.id)
    )
    result = await uow.session.execute(statement)
    return result.first() is not None
