from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from switchboard.api.deps import AdminDep, AdminScopeDep, ContainerDep, ScopeDep
from switchboard.pagination import DEFAULT_LIMIT, MAX_LIMIT
from switchboard.schemas import SafeStr
from switchboard.tenancy.schemas import (
    AccountCreate,
    AccountOut,
    KeyCreate,
    KeyCreated,
    KeyOut,
    KeyPage,
)

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=AccountOut,
    summary="Create an account (admin)",
)
async def create_account(body: AccountCreate, _: AdminDep, container: ContainerDep) -> AccountOut:
    account = await container.tenancy.create_account(slug=body.slug, name=body.name)
    return AccountOut.model_validate(account)


@router.get("/{account}", response_model=AccountOut, summary="Get an account")
async def get_account(scope: ScopeDep, container: ContainerDep) -> AccountOut:
    return AccountOut.model_validate(await container.tenancy.get_account(scope.slug))


@router.post(
    "/{account}/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    summary="Create an API key for the account (admin); the secret is shown once",
)
async def create_key(
    scope: AdminScopeDep, container: ContainerDep, body: KeyCreate | None = None
) -> KeyCreated:
    created = await container.tenancy.create_key(scope, name=body.name if body else None)
    return KeyCreated(
        id=created.key.id, key=created.secret, prefix=created.key.prefix, name=created.key.name
    )


@router.get("/{account}/keys", response_model=KeyPage, summary="API keys, oldest first (admin)")
async def list_keys(
    scope: AdminScopeDep,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[SafeStr | None, Query(max_length=500)] = None,
) -> KeyPage:
    keys, next_cursor = await container.tenancy.list_keys(scope, cursor=cursor, limit=limit)
    return KeyPage(items=[KeyOut.model_validate(k) for k in keys], next_cursor=next_cursor)


@router.delete(
    "/{account}/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API key (admin)",
)
async def revoke_key(key_id: uuid.UUID, scope: AdminScopeDep, container: ContainerDep) -> Response:
    await container.tenancy.revoke_key(scope, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
