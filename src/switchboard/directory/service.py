"""Directories: import, entry CRUD and search. One unit of work per operation; tools call
this concurrently, each call in its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from switchboard.config.directories import DirectoryConfig
from switchboard.db.base import utcnow
from switchboard.db.uow import AccountScope, UnitOfWork, UnitOfWorkFactory
from switchboard.directory.embedding import Embedder, from_blobs, to_blob
from switchboard.directory.models import DirectoryEntry
from switchboard.directory.repository import (
    DirectoryRepository,
    EntryView,
    Filter,
    StoredEntry,
    analyze_directories,
)
from switchboard.directory.rows import (
    EntryRow,
    InvalidEntry,
    build_entry,
    validate_external_id,
    validate_rows,
)
from switchboard.directory.search import SearchMode, fuse, parse_filters, query_terms
from switchboard.errors import InvalidRequest, NotFound
from switchboard.pagination import decode_int_cursor, encode_cursor
from switchboard.registry.service import account_config_in

IMPORT_BATCH = 1000
ANALYZE_AFTER = 1000  # rows: refresh the planner's statistics after a bulk import
EMBED_BATCH = 256
MAX_SEARCH_DEPTH = 1000  # ranked results past this are not paged to
CANDIDATES = 200  # per ranking, for hybrid fusion
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True, slots=True)
class ImportResult:
    total: int
    created: int
    updated: int
    embedded: int


@dataclass(frozen=True, slots=True)
class SearchHit:
    entry: EntryView
    score: float | None


@dataclass(frozen=True, slots=True)
class SearchPage:
    hits: list[SearchHit]
    mode: str
    next_cursor: str | None


def directory_not_found(name: str, config: Mapping[str, DirectoryConfig]) -> NotFound:
    known = ", ".join(sorted(config)) or "none"
    return NotFound(
        f"no directory '{name}' in this account's config (directories: {known})",
        code="DIRECTORY_NOT_FOUND",
    )


def entry_not_found(directory: str, external_id: str) -> NotFound:
    return NotFound(f"no entry '{external_id}' in directory '{directory}'", code="ENTRY_NOT_FOUND")


async def _schema_in(u: UnitOfWork, directory: str) -> DirectoryConfig:
    directories = (await account_config_in(u)).directories
    config = directories.get(directory)
    if config is None:
        raise directory_not_found(directory, directories)
    return config


async def _analyze(u: UnitOfWork) -> None:
    await analyze_directories(u)


async def _write_rows(
    u: UnitOfWork,
    directory: str,
    rows: Sequence[EntryRow],
    blobs: Sequence[bytes | None],
    progress: Progress | None,
) -> ImportResult:
    """Upsert ``rows`` in batches inside the unit of work ``u`` (which the caller commits)."""
    repository = DirectoryRepository(u, directory)
    now = utcnow()
    created = 0
    for start in range(0, len(rows), IMPORT_BATCH):
        batch = rows[start : start + IMPORT_BATCH]
        done = await repository.upsert(batch, blobs[start : start + IMPORT_BATCH], now=now)
        created += sum(1 for d in done if d.created)
        if progress is not None:
            progress("write", start + len(batch), len(rows))
    embedded = sum(1 for blob in blobs if blob is not None)
    return ImportResult(len(rows), created, len(rows) - created, embedded)


def _paged(hits: list[SearchHit], mode: str, offset: int, limit: int) -> SearchPage:
    """The first ``limit`` of ``hits`` (fetched one more than asked, to know if there is more)."""
    more = len(hits) > limit and offset + limit < MAX_SEARCH_DEPTH
    next_cursor = encode_cursor(str(offset + limit)) if more else None
    return SearchPage(hits=hits[:limit], mode=mode, next_cursor=next_cursor)


class DirectoryService:
    def __init__(self, uow: UnitOfWorkFactory, *, embedder: Embedder | None) -> None:
        self._uow = uow
        self.embedder = embedder

    async def schemas(self, scope: AccountScope) -> dict[str, DirectoryConfig]:
        async def op(u: UnitOfWork) -> dict[str, DirectoryConfig]:
            return dict((await account_config_in(u)).directories)

        return await self._uow.run(op, scope=scope, write=False)

    async def schema(self, scope: AccountScope, directory: str) -> DirectoryConfig:
        async def op(u: UnitOfWork) -> DirectoryConfig:
            return await _schema_in(u, directory)

        return await self._uow.run(op, scope=scope, write=False)

    async def count(self, scope: AccountScope, directory: str) -> int:
        async def op(u: UnitOfWork) -> int:
            await _schema_in(u, directory)
            return await DirectoryRepository(u, directory).count()

        return await self._uow.run(op, scope=scope, write=False)

    # --- writes ---------------------------------------------------------------------------

    async def import_entries(
        self,
        scope: AccountScope,
        directory: str,
        config: DirectoryConfig,
        rows: Sequence[EntryRow],
        *,
        progress: Progress | None = None,
    ) -> ImportResult:
        """Write validated rows in one transaction: all of them, or none."""
        blobs = await self._embed_rows(config, rows, progress)

        async def op(u: UnitOfWork) -> ImportResult:
            result = await _write_rows(u, directory, rows, blobs, progress)
            return result

        return await self._after_bulk_write(scope, await self._uow.run(op, scope=scope))

    async def reindex(
        self, scope: AccountScope, directory: str, *, progress: Progress | None = None
    ) -> ImportResult:
        """Rebuild every entry's search text, filter tokens, numbers and embedding from its
        stored data with the directory's current schema — after the schema changed. One
        transaction that locks the entries it rewrites, so a concurrent PUT or DELETE waits
        instead of being overwritten. All or nothing: entries that no longer fit the schema are
        listed (row = position in import order) and nothing changes. Embeddings are recomputed
        only for entries whose searchable text changed (inside the transaction)."""

        async def op(u: UnitOfWork) -> ImportResult:
            config = await _schema_in(u, directory)
            stored = await DirectoryRepository(u, directory).locked_entries()
            if not stored:
                return ImportResult(0, 0, 0, 0)
            records = (
                (number, {"id": entry.external_id, **entry.data})
                for number, entry in enumerate(stored, start=1)
            )
            rows = await asyncio.to_thread(validate_rows, config, directory, records)
            blobs = await self._reembed(config, rows, stored, progress)
            result = await _write_rows(u, directory, rows, blobs, progress)
            return result

        return await self._after_bulk_write(scope, await self._uow.run(op, scope=scope))

    async def _after_bulk_write(self, scope: AccountScope, result: ImportResult) -> ImportResult:
        if result.total >= ANALYZE_AFTER and self._uow.dialect == "postgresql":
            await self._uow.run(_analyze, scope=scope)
        return result

    async def _reembed(
        self,
        config: DirectoryConfig,
        rows: Sequence[EntryRow],
        stored: Sequence[StoredEntry],
        progress: Progress | None,
    ) -> list[bytes | None]:
        """Stored embeddings where the searchable text is unchanged, new ones elsewhere."""
        if not config.semantic or self.embedder is None:
            return [None] * len(rows)
        changed = [
            index
            for index, (row, old) in enumerate(zip(rows, stored, strict=True))
            if old.embedding is None or old.search_text != row.search_text
        ]
        fresh = await self._embed_rows(config, [rows[i] for i in changed], progress)
        blobs = [old.embedding for old in stored]
        for index, blob in zip(changed, fresh, strict=True):
            blobs[index] = blob
        return blobs

    async def put_entry(
        self, scope: AccountScope, directory: str, external_id: str, fields: Mapping[str, Any]
    ) -> tuple[DirectoryEntry, bool]:
        """Create or replace one entry; ``True`` when it was created."""
        config = await self.schema(scope, directory)
        try:
            row = build_entry(config, validate_external_id(external_id), fields)
        except InvalidEntry as exc:
            raise InvalidRequest(
                f"field '{exc.field}': {exc.message}" if exc.field else exc.message,
                code="INVALID_ENTRY",
                details={"field": exc.field, "message": exc.message},
            ) from None
        [blob] = await self._embed_rows(config, [row], None)

        async def op(u: UnitOfWork) -> tuple[DirectoryEntry, bool]:
            await _schema_in(u, directory)  # still configured
            repository = DirectoryRepository(u, directory)
            [done] = await repository.upsert([row], [blob], now=utcnow())
            entry = await repository.get(row.external_id)
            assert entry is not None
            return entry, done.created

        return await self._uow.run(op, scope=scope)

    async def delete_entry(self, scope: AccountScope, directory: str, external_id: str) -> None:
        async def op(u: UnitOfWork) -> None:
            await _schema_in(u, directory)
            if not await DirectoryRepository(u, directory).delete(external_id):
                raise entry_not_found(directory, external_id)

        await self._uow.run(op, scope=scope)

    # --- reads ----------------------------------------------------------------------------

    async def get_entry(
        self, scope: AccountScope, directory: str, external_id: str
    ) -> DirectoryEntry:
        async def op(u: UnitOfWork) -> DirectoryEntry:
            await _schema_in(u, directory)
            entry = await DirectoryRepository(u, directory).get(external_id)
            if entry is None:
                raise entry_not_found(directory, external_id)
            return entry

        return await self._uow.run(op, scope=scope, write=False)

    async def search(
        self,
        scope: AccountScope,
        directory: str,
        *,
        query: str = "",
        filters: Mapping[str, Sequence[str]] | None = None,
        mode: SearchMode = "auto",
        limit: int = 10,
        cursor: str | None = None,
    ) -> SearchPage:
        offset = decode_int_cursor(cursor)
        if offset >= MAX_SEARCH_DEPTH:
            raise InvalidRequest(
                f"search results are paged to a depth of {MAX_SEARCH_DEPTH}; narrow the query",
                code="INVALID_CURSOR",
            )
        limit = min(limit, MAX_SEARCH_DEPTH - offset)
        terms = query_terms(query)

        async def plan(u: UnitOfWork) -> tuple[str, list[Filter], float, SearchPage | None]:
            config = await _schema_in(u, directory)
            parsed = parse_filters(config, filters or {})
            chosen = self._mode(config, mode, query, terms)
            if chosen in ("semantic", "hybrid"):
                # the query is embedded outside the transaction
                return chosen, parsed, config.min_similarity, None
            repository = DirectoryRepository(u, directory)
            words = terms if chosen == "text" else []
            found = await repository.matching(words, parsed, limit=limit + 1, offset=offset)
            hits = [SearchHit(match.entry, match.score) for match in found]
            return chosen, parsed, config.min_similarity, _paged(hits, chosen, offset, limit)

        chosen, parsed, floor, page = await self._uow.run(plan, scope=scope, write=False)
        if page is not None:
            return page
        assert self.embedder is not None
        [vector] = await self.embedder.embed([query])
        depth = offset + limit + 1

        async def ranked_search(u: UnitOfWork) -> SearchPage:
            repository = DirectoryRepository(u, directory)
            semantic = await self._nearest(repository, parsed, vector, depth, floor=floor)
            if chosen == "semantic":
                return await self._page(repository, semantic[offset:], chosen, offset, limit)
            text = (
                await repository.ranked_ids(terms, parsed, limit=max(depth, CANDIDATES), offset=0)
                if terms
                else []
            )
            fused = fuse([[i for i, _ in text], [i for i, _ in semantic[:CANDIDATES]]])
            return await self._page(repository, fused[offset:], chosen, offset, limit)

        return await self._uow.run(ranked_search, scope=scope, write=False)

    # --- helpers --------------------------------------------------------------------------

    def _mode(self, config: DirectoryConfig, mode: SearchMode, query: str, terms: list[str]) -> str:
        semantic = config.semantic and self.embedder is not None and bool(query.strip())
        if mode in ("semantic", "hybrid") and not semantic:
            if not query.strip():
                raise InvalidRequest(f"mode={mode} needs a query", code="QUERY_REQUIRED")
            reason = (
                "the directory does not enable semantic: true"
                if not config.semantic
                else "the semantic extra is not installed on this server"
            )
            raise InvalidRequest(
                f"semantic search is unavailable: {reason}", code="SEMANTIC_SEARCH_UNAVAILABLE"
            )
        if mode == "auto":
            mode = "hybrid" if semantic else "text"
        if mode == "text" and not terms:
            return "filter"
        return mode

    async def _nearest(
        self,
        repository: DirectoryRepository,
        filters: Sequence[Filter],
        vector: np.ndarray[Any, Any],
        depth: int,
        *,
        floor: float,
    ) -> list[tuple[int, float | None]]:
        """The entries passing ``filters`` nearest to ``vector`` (cosine similarity at least
        ``floor``), best first."""
        rows = await repository.vectors(filters)
        dimensions = int(vector.shape[0])
        rows = [(i, blob) for i, blob in rows if len(blob) == dimensions * 4]
        if not rows:
            return []
        ids = np.fromiter((i for i, _ in rows), dtype=np.int64, count=len(rows))
        blobs = [blob for _, blob in rows]

        def rank() -> list[tuple[int, float | None]]:
            scores = from_blobs(blobs, dimensions) @ vector
            keep = min(max(depth, CANDIDATES), len(scores))
            top = np.argpartition(-scores, keep - 1)[:keep]
            top = top[np.argsort(-scores[top], kind="stable")]
            return [(int(ids[i]), float(scores[i])) for i in top if scores[i] >= floor]

        return await asyncio.to_thread(rank) if len(rows) > 2000 else rank()

    @staticmethod
    async def _page(
        repository: DirectoryRepository,
        ranked: Sequence[tuple[int, float | None]],
        mode: str,
        offset: int,
        limit: int,
    ) -> SearchPage:
        ranked = ranked[: limit + 1]
        entries = await repository.by_ids([entry_id for entry_id, _ in ranked])
        hits = [SearchHit(entries[i], score) for i, score in ranked if i in entries]
        return _paged(hits, mode, offset, limit)

    async def _embed_rows(
        self, config: DirectoryConfig, rows: Sequence[EntryRow], progress: Progress | None
    ) -> list[bytes | None]:
        if not config.semantic or self.embedder is None:
            return [None] * len(rows)
        blobs: list[bytes | None] = []
        for start in range(0, len(rows), EMBED_BATCH):
            batch = rows[start : start + EMBED_BATCH]
            vectors = await self.embedder.embed([row.search_text for row in batch])
            blobs.extend(to_blob(vector) for vector in vectors)
            if progress is not None:
                progress("embed", start + len(batch), len(rows))
        return blobs
