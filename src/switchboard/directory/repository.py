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
    exists,
    func,
    literal_column,
    null,
    select,
    table,
    text,
)

from switchboard.db.uow import UnitOfWork
from switchboard.db.upsert import dialect_insert
from switchboard.directory.facets import facet_token, scope_token
from switchboard.directory.models import DirectoryEntry, DirectoryNumber
from switchboard.directory.rows import EntryRow

ENTRIES = cast(Table, DirectoryEntry.__table__)
NUMBERS = cast(Table, DirectoryNumber.__table__)
_CHUNK = 500
_FTS = table("directory_fts", column("rowid"))
_FTS_NAME: ColumnClause[Any] = literal_column("directory_fts")
_PG_VECTOR: ColumnClause[Any] = literal_column("directory_entries.search_vector")
_PG_ENGLISH: ColumnClause[Any] = literal_column("'english'::regconfig")
_PG_SIMPLE: ColumnClause[Any] = literal_column("'simple'::regconfig")


@dataclass(frozen=True, slots=True)
class Filter:
    """An exact filter on one field: any of ``values`` (keyword, list, bool), or a number range."""

    field: str
    values: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class EntryView:
    """What a search returns of an entry."""

    external_id: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as stored, for rebuilding its index."""

    external_id: str
    data: dict[str, Any]
    search_text: str
    embedding: bytes | None


@dataclass(frozen=True, slots=True)
class Match:
    id: int
    score: float | None
    entry: EntryView


@dataclass(frozen=True, slots=True)
class Upserted:
    id: int
    created: bool


class DirectoryRepository:
    def __init__(self, uow: UnitOfWork, directory: str) -> None:
        self._uow = uow
        self._account = uow.account.id
        self._directory = directory
        self._scope_token = scope_token(self._account, directory)

    # --- writes ---------------------------------------------------------------------------

    async def upsert(
        self, rows: Sequence[EntryRow], embeddings: Sequence[bytes | None], *, now: datetime
    ) -> list[Upserted]:
        """Insert or update ``rows`` by external id (one statement per batch), then replace
        their number fields. The database decides what exists: no read first."""
        session = self._uow.session
        insert = dialect_insert(self._uow, ENTRIES)
        statement = insert.on_conflict_do_update(
            index_elements=["account_id", "directory", "external_id"],
            set_={
                "data": insert.excluded.data,
                "search_text": insert.excluded.search_text,
                "facet_text": insert.excluded.facet_text,
                "embedding": insert.excluded.embedding,
                "updated_at": insert.excluded.updated_at,
            },
        )
        params = [
            {
                "account_id": self._account,
                "directory": self._directory,
                "external_id": row.external_id,
                "data": row.data,
                "search_text": row.search_text,
                "facet_text": self._facet_text(row),
                "embedding": blob,
                "created_at": now,
                "updated_at": now,
            }
            for row, blob in zip(rows, embeddings, strict=True)
        ]
        # RETURNING rows come in no particular order (asking for parameter order makes
        # SQLAlchemy send an SQLite upsert one row per statement): match them by external id.
        returned = await session.execute(
            statement.returning(ENTRIES.c.id, ENTRIES.c.external_id, ENTRIES.c.created_at),
            params,
        )
        written = {r.external_id: Upserted(id=r.id, created=r.created_at == now) for r in returned}
        upserted = [written[row.external_id] for row in rows]
        updated = [u.id for u in upserted if not u.created]
        for start in range(0, len(updated), _CHUNK):
            await session.execute(
                delete(NUMBERS).where(NUMBERS.c.entry_id.in_(updated[start : start + _CHUNK]))
            )
        numbers = [
            {"entry_id": done.id, "field": field, "num": value}
            for done, row in zip(upserted, rows, strict=True)
            for field, value in row.numbers
        ]
        if numbers:
            await session.execute(NUMBERS.insert(), numbers)
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
            select(DirectoryEntry).where(*self._scoped(), ENTRIES.c.external_id == external_id)
        )
        return result.scalar_one_or_none()

    async def by_ids(self, ids: Sequence[int]) -> dict[int, EntryView]:
        if not ids:
            return {}
        result = await self._uow.session.execute(
            select(ENTRIES.c.id, ENTRIES.c.external_id, ENTRIES.c.data).where(
                *self._rechecked(), ENTRIES.c.id.in_(list(ids))
            )
        )
        return {row.id: EntryView(row.external_id, row.data) for row in result}

    async def locked_entries(self) -> list[StoredEntry]:
        """Every entry of the directory, in import order, locked against other writers until
        this transaction ends (FOR UPDATE on PostgreSQL; an SQLite write transaction already
        holds the database's write lock) — so a reindex cannot overwrite a concurrent write."""
        result = await self._uow.session.execute(
            select(
                ENTRIES.c.external_id, ENTRIES.c.data, ENTRIES.c.search_text, ENTRIES.c.embedding
            )
            .where(*self._scoped())
            .order_by(ENTRIES.c.id)
            .with_for_update()
        )
        return [
            StoredEntry(row.external_id, row.data, row.search_text, row.embedding) for row in result
        ]

    async def count(self) -> int:
        result = await self._uow.session.execute(
            select(func.count()).select_from(ENTRIES).where(*self._scoped())
        )
        return int(result.scalar_one())

    async def matching(
        self,
        terms: Sequence[str],
        filters: Sequence[Filter],
        *,
        limit: int,
        offset: int,
    ) -> list[Match]:
        """Entries matching ``filters`` (and any of ``terms``): best match first with a score
        where higher is better, or without terms in import order with no score."""
        # Rank ids first, then read the entries of the page only: sorting every match with its
        # data costs more than the search itself on large result sets.
        ranked = await self.ranked_ids(terms, filters, limit=limit, offset=offset)
        entries = await self.by_ids([entry_id for entry_id, _ in ranked])
        return [Match(i, score, entries[i]) for i, score in ranked if i in entries]

    async def ranked_ids(
        self,
        terms: Sequence[str],
        filters: Sequence[Filter],
        *,
        limit: int,
        offset: int,
    ) -> list[tuple[int, float | None]]:
        """Like :meth:`matching`, ids and scores only."""
        statement = self.search_statement(terms, filters).limit(limit).offset(offset)
        result = await self._uow.session.execute(statement)
        return [(row.id, None if row.score is None else float(row.score)) for row in result]

    def search_statement(self, terms: Sequence[str], filters: Sequence[Filter]) -> Select[Any]:
        numbers = self._number_filters(filters)
        facets = [f for f in filters if f.values]
        if self._uow.dialect == "postgresql":
            groups = self._facet_groups(facets)
            query = func.to_tsquery(
                _PG_SIMPLE, " & ".join(f"({' | '.join(group)})" for group in groups)
            )
            if terms:
                words = func.to_tsquery(_PG_ENGLISH, " | ".join(terms))
                score = func.ts_rank_cd(_PG_VECTOR, words)
                return (
                    select(ENTRIES.c.id, score.label("score"))
                    .where(*self._scoped(), _PG_VECTOR.op("@@")(words.op("&&")(query)), *numbers)
                    .order_by(score.desc(), ENTRIES.c.id)
                )
            return (
                select(ENTRIES.c.id, null().label("score"))
                .where(*self._scoped(), _PG_VECTOR.op("@@")(query), *numbers)
                .order_by(ENTRIES.c.id)
            )
        all_of = " AND ".join(
            "(" + " OR ".join(f'"{token}"' for token in group) + ")"
            for group in self._facet_groups(facets)
        )
        match = f"facet_text : ({all_of})"
        joined = _FTS.join(ENTRIES, ENTRIES.c.id == _FTS.c.rowid)
        if terms:
            phrase = " OR ".join(f'"{term}"' for term in terms)
            rank = func.bm25(_FTS_NAME, 1.0, 0.0)  # lower is better; facets weigh nothing
            return (
                select(ENTRIES.c.id, (-rank).label("score"))
                .select_from(joined)
                .where(
                    _FTS_NAME.op("MATCH")(f"search_text : ({phrase}) AND {match}"),
                    *self._rechecked(),
                    *numbers,
                )
                .order_by(rank, ENTRIES.c.id)
            )
        return (
            select(ENTRIES.c.id, null().label("score"))
            .select_from(joined)
            .where(_FTS_NAME.op("MATCH")(match), *self._rechecked(), *numbers)
            .order_by(_FTS.c.rowid)
        )

    async def vectors(self, filters: Sequence[Filter]) -> list[tuple[int, bytes]]:
        """The embeddings of the entries matching ``filters`` (found through the index)."""
        statement = (
            self.search_statement([], filters)
            .with_only_columns(ENTRIES.c.id, ENTRIES.c.embedding)
            .where(ENTRIES.c.embedding.is_not(None))
            .order_by(None)
        )
        result = await self._uow.session.execute(statement)
        return [(row.id, row.embedding) for row in result]

    # --- helpers --------------------------------------------------------------------------

    def _scoped(self) -> list[ColumnElement[bool]]:
        return [ENTRIES.c.account_id == self._account, ENTRIES.c.directory == self._directory]

    def _rechecked(self) -> list[ColumnElement[bool]]:
        """Account and directory, checked on each row found by the FTS5 index or by id. The
        unary ``+`` keeps SQLite from driving the query from the (account, directory) index —
        running the full-text match once per entry of the directory, or scanning it for a
        handful of ids."""
        if self._uow.dialect == "postgresql":
            return self._scoped()
        return [
            literal_column("+directory_entries.account_id", ENTRIES.c.account_id.type)
            == self._account,
            literal_column("+directory_entries.directory", ENTRIES.c.directory.type)
            == self._directory,
        ]

    def _facet_text(self, row: EntryRow) -> str:
        tokens = [facet_token(self._scope_token, field, value) for field, value in row.facets]
        return " ".join((self._scope_token, *tokens))

    def _facet_groups(self, facets: Sequence[Filter]) -> list[list[str]]:
        """Per filter, its values' tokens (any of them matches); the scope token alone when
        there is no filter. Tokens are digits: no quoting or escaping can be needed."""
        if not facets:
            return [[self._scope_token]]
        return [
            [facet_token(self._scope_token, item.field, value) for value in item.values]
            for item in facets
        ]

    def _number_filters(self, filters: Sequence[Filter]) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        for item in filters:
            if item.values:
                continue
            conditions: list[ColumnElement[bool]] = [
                NUMBERS.c.entry_id == ENTRIES.c.id,
                NUMBERS.c.field == item.field,
            ]
            if item.low is not None:
                conditions.append(NUMBERS.c.num >= item.low)
            if item.high is not None:
                conditions.append(NUMBERS.c.num <= item.high)
            clauses.append(exists().where(*conditions))
        return clauses


async def analyze_directories(uow: UnitOfWork) -> None:
    """PostgreSQL's planner statistics after a bulk load: autovacuum gets there minutes later,
    and meanwhile the planner takes the fresh tables for empty (nested loops, > 1 s a search).
    SQLite's FTS5 queries do not need them."""
    await uow.session.execute(text("ANALYZE directory_entries, directory_numbers"))
