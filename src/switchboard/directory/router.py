from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status

from switchboard.api.deps import ContainerDep, ScopeDep
from switchboard.api.limits import read_body
from switchboard.config.directories import DirectoryConfig
from switchboard.directory.files import decode_lines, detect_format, parse_entries
from switchboard.directory.rows import EntryRow, FileFormat
from switchboard.directory.schemas import (
    DirectoryDetail,
    DirectoryList,
    DirectoryOut,
    EntryOut,
    EntryPut,
    ImportOut,
    SearchHitOut,
    SearchOut,
)
from switchboard.directory.search import SearchMode
from switchboard.errors import InvalidRequest
from switchboard.schemas import SafeStr, unsafe_text_reason

router = APIRouter(prefix="/v1/accounts/{account}/directories", tags=["directories"])
IMPORT_ROUTE = f"{router.prefix}/{{directory}}/entries:import"
"""The one route given the large body limit (``max_import_bytes``): it streams its body."""

DirectoryParam = Annotated[
    str, Path(pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="Directory (schema) name")
]
EntryIdParam = Annotated[SafeStr, Path(min_length=1, max_length=200, description="External id")]
FILTER_PREFIX = "filter."
MAX_FILTERS = 20


@router.get("", response_model=DirectoryList, summary="The account's directory schemas")
async def list_directories(scope: ScopeDep, container: ContainerDep) -> DirectoryList:
    schemas = await container.directories.schemas(scope)
    embedder = container.directories.embedder is not None
    return DirectoryList(
        items=[DirectoryOut.of(name, c, embedder=embedder) for name, c in sorted(schemas.items())]
    )


@router.get("/{directory}", response_model=DirectoryDetail, summary="A schema and its size")
async def get_directory(
    directory: DirectoryParam, scope: ScopeDep, container: ContainerDep
) -> DirectoryDetail:
    config = await container.directories.schema(scope, directory)
    count = await container.directories.count(scope, directory)
    embedder = container.directories.embedder is not None
    out = DirectoryOut.of(directory, config, embedder=embedder)
    return DirectoryDetail(**out.model_dump(), entries=count)


@router.post(
    "/{directory}/entries:import",
    response_model=ImportOut,
    summary="Import entries from CSV or JSON Lines, all or nothing; existing ids are updated",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def import_entries(
    directory: DirectoryParam,
    request: Request,
    scope: ScopeDep,
    container: ContainerDep,
    format: Annotated[
        Literal["csv", "jsonl"] | None,
        Query(description="Overrides the Content-Type (text/csv, application/x-ndjson)"),
    ] = None,
) -> ImportOut:
    # The key was checked (ScopeDep) before a byte of the body is read, and the body is
    # streamed under the import limit: see api.limits.BodySizeLimit.
    config = await container.directories.schema(scope, directory)
    file_format = format or detect_format(None, request.headers.get("content-type"))
    body = await read_body(request.stream(), limit=container.settings.max_import_bytes)
    rows = await asyncio.to_thread(_parse, config, directory, body, file_format)
    result = await container.directories.import_entries(scope, directory, config, rows)
    return ImportOut.of(directory, result)


@router.post(
    "/{directory}:reindex",
    response_model=ImportOut,
    summary="Re-index every entry with the directory's current schema (after a schema change)",
)
async def reindex(directory: DirectoryParam, scope: ScopeDep, container: ContainerDep) -> ImportOut:
    return ImportOut.of(directory, await container.directories.reindex(scope, directory))


def _parse(
    config: DirectoryConfig, directory: str, body: bytes, file_format: FileFormat
) -> list[EntryRow]:
    return parse_entries(config, directory, decode_lines(body), file_format)


@router.get(
    "/{directory}/search",
    response_model=SearchOut,
    summary="Search: full text, filters (filter.<field>=…), semantic or hybrid ranking",
)
async def search(
    directory: DirectoryParam,
    request: Request,
    scope: ScopeDep,
    container: ContainerDep,
    q: Annotated[SafeStr, Query(max_length=1000, description="Words to search for")] = "",
    mode: Annotated[
        SearchMode,
        Query(description="auto: hybrid when the directory is semantic, else text"),
    ] = "auto",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    cursor: Annotated[SafeStr | None, Query(max_length=200)] = None,
) -> SearchOut:
    filters: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key.startswith(FILTER_PREFIX):
            reason = unsafe_text_reason(key) or unsafe_text_reason(value)
            if reason is not None:
                raise InvalidRequest(
                    f"invalid request: query.{key}: {reason}",
                    details={"problems": [{"field": f"query.{key}", "message": reason}]},
                )
            filters.setdefault(key[len(FILTER_PREFIX) :], []).append(value[:500])
    if len(filters) > MAX_FILTERS:
        raise InvalidRequest(f"at most {MAX_FILTERS} filters", code="INVALID_FILTER")
    page = await container.directories.search(
        scope, directory, query=q, filters=filters, mode=mode, limit=limit, cursor=cursor
    )
    return SearchOut(
        items=[
            SearchHitOut(id=hit.entry.external_id, data=hit.entry.data, score=hit.score)
            for hit in page.hits
        ],
        mode=page.mode,
        next_cursor=page.next_cursor,
    )


@router.get("/{directory}/entries/{entry_id}", response_model=EntryOut, summary="Get an entry")
async def get_entry(
    directory: DirectoryParam, entry_id: EntryIdParam, scope: ScopeDep, container: ContainerDep
) -> EntryOut:
    return EntryOut.of(await container.directories.get_entry(scope, directory, entry_id))


@router.put(
    "/{directory}/entries/{entry_id}",
    response_model=EntryOut,
    summary="Create (201) or replace (200) an entry",
    responses={201: {"model": EntryOut, "description": "Created"}},
)
async def put_entry(
    directory: DirectoryParam,
    entry_id: EntryIdParam,
    body: EntryPut,
    response: Response,
    scope: ScopeDep,
    container: ContainerDep,
) -> EntryOut:
    entry, created = await container.directories.put_entry(scope, directory, entry_id, body.data)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return EntryOut.of(entry)


@router.delete(
    "/{directory}/entries/{entry_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an entry",
)
async def delete_entry(
    directory: DirectoryParam, entry_id: EntryIdParam, scope: ScopeDep, container: ContainerDep
) -> Response:
    await container.directories.delete_entry(scope, directory, entry_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
