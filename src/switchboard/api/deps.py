"""FastAPI dependencies as ``Annotated`` aliases. None of them hands out a session."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from switchboard import logs
from switchboard.bootstrap import Container
from switchboard.config.roles import Actor
from switchboard.db.uow import AccountScope
from switchboard.errors import Forbidden
from switchboard.schemas import SafeStr
from switchboard.tenancy.service import Principal

_bearer = HTTPBearer(auto_error=False, description="An account API key or the admin key")


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_principal(
    container: ContainerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return await container.tenancy.authenticate(credentials.credentials if credentials else None)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this operation needs the admin key", code="ADMIN_REQUIRED")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


def get_actor(principal: PrincipalDep) -> Actor:
    """The admin key acts as the operator; an account key as a tenant of its account."""
    return "operator" if principal.is_admin else "tenant"


ActorDep = Annotated[Actor, Depends(get_actor)]


async def require_metrics_access(
    container: ContainerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """``/metrics``: the admin key, or the separate SWITCHBOARD_METRICS_TOKEN (for a scraper
    that should hold nothing more)."""
    token = container.settings.metrics_token
    presented = credentials.credentials if credentials else None
    if (
        token is not None
        and presented is not None
        and secrets.compare_digest(presented.encode(), token.get_secret_value().encode())
    ):
        return
    principal = await container.tenancy.authenticate(presented)
    if not principal.is_admin:
        raise Forbidden("metrics need the admin key or the metrics token", code="ADMIN_REQUIRED")


# SafeStr: a NUL or a lone surrogate in a path must not reach the database (422).
AccountSlug = Annotated[SafeStr, Path(min_length=1, max_length=64, description="Account slug")]
AgentSlug = Annotated[SafeStr, Path(min_length=1, max_length=64, description="Agent slug")]


async def get_scope(
    account: AccountSlug, principal: PrincipalDep, container: ContainerDep, request: Request
) -> AccountScope:
    scope = await container.tenancy.resolve(principal, account)
    # The request's log lines (and its runs') name the account, and the agent of agent routes.
    logs.bind(account=scope.slug, agent=request.path_params.get("agent"))
    return scope


ScopeDep = Annotated[AccountScope, Depends(get_scope)]


async def get_admin_scope(
    account: AccountSlug, principal: AdminDep, container: ContainerDep
) -> AccountScope:
    scope = await container.tenancy.resolve(principal, account)
    logs.bind(account=scope.slug)
    return scope


AdminScopeDep = Annotated[AccountScope, Depends(get_admin_scope)]
