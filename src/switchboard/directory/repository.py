"""SQL for directories. Every statement is bound to one account and one directory: no query
here can see another account's entries, whatever ids or filters it is given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    Select,
    Table,
    column,
    delete,
    func,
    literal_column,
    select,
    table,
)
from sqlalchemy.dialects import postgresql, sqlite

from switchboard.db.uow import UnitOfWork
from switchboard.directory.models import DirectoryEntry, DirectoryValue
from switchboard.directory.rows import EntryRow

ENTRIES = cast(Table, DirectoryEntry.__table__)
VALUES = cast(Table, DirectoryValue.__table__)
_CHUNK = 500
_FTS = table("directory_fts", column("rowid"))
_FTS_NAME: ColumnClause[Any] = literal_column("directory_fts")
_PG_VECTOR: ColumnClause[Any] = literal_column("directory_entries.search_vector")
_PG_CONFIG: ColumnClause[Any] = literal_column("'english'::regconfig")


@dataclass(frozen=True, slots=True)
class Filter:
    """An exact filter on one field: any of ``values`` (keyword, list, bool), or a number range."""

    field: str
    values: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None

    @property
    def is_range(self) -> bool:
        return not self.values


@dataclass(frozen=True, slots=True)
class Upserted:
    id: int
    created: bool


class DirectoryRepository:
    def __init__(self, uow: UnitOfWork, directory: str) -> None:
        self._uow = uow
        self._account = uow.account.id
        self._directory = directory

    # --- writes ---------------------------------------------------------------------------

    async def upsert(
        self, rows: Sequence[EntryRow], embeddings: Sequence[bytes | None], *, now: datetime
    ) -> list[Upserted]:
        """Insert or update ``rows`` by external id (one statement per batch), then replace
        their filter values. The database decides what exists: no read first."""
        session = self._uow.session
        insert = (postgresql if self._uow.dialect == "postgresql" else sqlite).insert(ENTRIES)
        statement = insert.on_conflict_do_update(
            index_elements=["account_id", "directory", "external_id"],
            set_={
                "data": insert.excluded.data,
                "search_text": insert.excluded.search_text,
                "embedding": insert.excluded.embedding,
                "updated_at": insert.excluded.updated_at,
            },
        ).returning(ENTRIES.c.id, ENTRIES.c.created_at, sort_by_parameter_order=True)
        params = [
            {
                "account_id": self._account,
                "directory": self._directory,
                "external_id": row.external_id,
                "data": row.data,
                "search_text": row.search_text,
                "embedding": blob,
                "created_at": now,
                "updated_at": now,
            }
            for row, blob in zip(rows, embeddings, strict=True)
        ]
        result = await session.execute(statement, params)
        upserted = [Upserted(id=r.id, created=r.created_at == now) for r in result]
        updated = [u.id for u in upserted if not u.created]
        for start in range(0, len(updated), _CHUNK):
            await session.execute(
                delete(VALUES).where(VALUES.c.entry_id.in_(updated[start : start + _CHUNK]))
            )
        values = [
            {
                "entry_id": done.id,
                "account_id": self._account,
                "directory": self._directory,
                "field": value.field,
                "kw": value.kw,
                "num": value.num,
            }
            for done, row in zip(upserted, rows, strict=True)
            for value in row.values
        ]
        if values:
            await session.execute(VALUES.insert(), values)
        return upserted

    async def delete(self, external_id: str) -> bool:
        result = await self._uow.session.execute(
            delete(ENTRIES)
            .where(*self._scoped(), ENTRIES.c.external_id == external_id)
            .returning(ENTRIES.c.id)
        )
        return result.first() is not None

    # --- reads ----------------------------------------------------------------------------

    async def get(self, external_id: str) -> DirectoryEntry | None:
        result = await self._uow.session.execute(
            select(DirectoryEntry).where(
                DirectoryEntry.account_id == self._account,
                DirectoryEntry.directory == self._directory,
                DirectoryEntry.external_id == external_id,
            )
        )
        return result.scalar_one_or_none()

    async def by_ids(self, ids: Sequence[int]) -> dict[int, DirectoryEntry]:
        if not ids:
            return {}
        result = await self._uow.session.execute(
            select(DirectoryEntry).where(
                DirectoryEntry.account_id == self._account,
                DirectoryEntry.directory == self._directory,
                DirectoryEntry.id.in_(list(ids)),
            )
        )
        return {entry.id: entry for entry in result.scalars()}

    async def count(self) -> int:
        result = await self._uow.session.execute(
            select(func.count()).select_from(ENTRIES).where(*self._scoped())
        )
        return int(result.scalar_one())

    async def text_ranked(
        self, terms: Sequence[str], filters: Sequence[Filter], *, limit: int, offset: int
    ) -> list[tuple[int, float]]:
        """Entry ids best match first, with a score where higher is better."""
        statement = self.text_statement(terms, filters).limit(limit).offset(offset)
        result = await self._uow.session.execute(statement)
        return [(row.id, float(row.score)) for row in result]

    def text_statement(self, terms: Sequence[str], filters: Sequence[Filter]) -> Select[Any]:
        if self._uow.dialect == "postgresql":
            query = func.to_tsquery(_PG_CONFIG, " | ".join(terms))
            score = func.ts_rank_cd(_PG_VECTOR, query)
            return (
                select(ENTRIES.c.id, score.label("score"))
                .where(*self._scoped(), _PG_VECTOR.op("@@")(query), *self._filters(filters))
                .order_by(score.desc(), ENTRIES.c.id)
            )
        match = " OR ".join(f'"{term}"' for term in terms)
        rank = func.bm25(_FTS_NAME)  # lower is better
        return (
            select(ENTRIES.c.id, (-rank).label("score"))
            .select_from(_FTS.join(ENTRIES, ENTRIES.c.id == _FTS.c.rowid))
            .where(_FTS_NAME.op("MATCH")(match), *self._scoped(), *self._filters(filters))
            .order_by(rank, ENTRIES.c.id)
        )

    async def filtered(self, filters: Sequence[Filter], *, limit: int, offset: int) -> list[int]:
        """Entry ids matching ``filters``, by external id."""
        statement = self.filter_statement(filters).limit(limit).offset(offset)
        return list((await self._uow.session.execute(statement)).scalars())

    def filter_statement(self, filters: Sequence[Filter]) -> Select[Any]:
        return (
            select(ENTRIES.c.id)
            .where(*self._scoped(), *self._filters(filters))
            .order_by(ENTRIES.c.external_id)
        )

    async def vectors(self, filters: Sequence[Filter]) -> list[tuple[int, bytes]]:
        result = await self._uow.session.execute(
            select(ENTRIES.c.id, ENTRIES.c.embedding).where(
                *self._scoped(), ENTRIES.c.embedding.is_not(None), *self._filters(filters)
            )
        )
        return [(row.id, row.embedding) for row in result]

    # --- helpers --------------------------------------------------------------------------

    def _scoped(self) -> list[ColumnElement[bool]]:
        return [ENTRIES.c.account_id == self._account, ENTRIES.c.directory == self._directory]

    def _filters(self, filters: Sequence[Filter]) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        for item in filters:
            conditions: list[ColumnElement[bool]] = [
                VALUES.c.account_id == self._account,
                VALUES.c.directory == self._directory,
                VALUES.c.field == item.field,
            ]
            if item.values:
                conditions.append(VALUES.c.kw.in_(item.values))
            else:
                if item.low is not None:
                    conditions.append(VALUES.c.num >= item.low)
                if item.high is not None:
                    conditions.append(VALUES.c.num <= item.high)
            clauses.append(ENTRIES.c.id.in_(select(VALUES.c.entry_id).where(*conditions)))
        return clauses
