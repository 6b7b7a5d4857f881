"""The operator's limits page (each provider's slots, queue and rpm/tpm use, as this process
sees them) and the directories (a search box over the same search as the API, and an entry)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from switchboard.api.deps import ContainerDep
from switchboard.directory.search import SearchMode
from switchboard.schemas import SafeStr
from switchboard.ui.deps import OperatorDep, PageScopeDep
from switchboard.ui.errors import ConsoleRoute
from switchboard.ui.render import render

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)
DirectoryName = Annotated[SafeStr, Path(min_length=1, max_length=64)]
EntryId = Annotated[SafeStr, Path(min_length=1, max_length=200)]
HITS = 20


@router.get("/limits")
async def limits(request: Request, _: OperatorDep, container: ContainerDep) -> Response:
    return render(
        request,
        "limits.html",
        limits=container.limiter.report(),
        shared=container.settings.redis_url is not None,
    )


@router.get("/accounts/{account}/directories")
async def directories(request: Request, scope: PageScopeDep, container: ContainerDep) -> Response:
    schemas = await container.directories.schemas(scope)
    return render(request, "directories.html", account=scope.slug, schemas=sorted(schemas.items()))


@router.get("/accounts/{account}/directories/{directory}")
async def directory(
    request: Request,
    scope: PageScopeDep,
    directory: DirectoryName,
    container: ContainerDep,
    q: Annotated[SafeStr, Query(max_length=1000)] = "",
    mode: SearchMode = "auto",
    cursor: Annotated[SafeStr | None, Query(max_length=200)] = None,
) -> Response:
    config = await container.directories.schema(scope, directory)
    page = await container.directories.search(
        scope, directory, query=q, filters={}, mode=mode, limit=HITS, cursor=cursor
    )
    return render(
        request,
        "directory.html",
        account=scope.slug,
        directory=directory,
        config=config,
        count=await container.directories.count(scope, directory),
        q=q,
        mode=mode,
        page=page,
    )


@router.get("/accounts/{account}/directories/{directory}/entries/{entry_id}")
async def entry(
    request: Request,
    scope: PageScopeDep,
    directory: DirectoryName,
    entry_id: EntryId,
    container: ContainerDep,
) -> Response:
    found = await container.directories.get_entry(scope, directory, entry_id)
    return render(
        request,
        "entry.html",
        account=scope.slug,
        directory=directory,
        entry_id=found.external_id,
        data=found.data,
    )
