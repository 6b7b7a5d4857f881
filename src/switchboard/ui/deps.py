"""The console's dependencies: who is logged in (checked again on every request), the CSRF check
of every form, and the account a page may show — resolved by the same rules as the API, so an
account key sees only its own account and another account's pages are 'not found'."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BeforeValidator

from switchboard import logs
from switchboard.api.deps import AccountSlug, ContainerDep
from switchboard.db.uow import AccountScope
from switchboard.errors import Forbidden, Unauthenticated
from switchboard.tenancy.service import Principal
from switchboard.ui.session import COOKIE, CSRF_FIELD, CSRF_HEADER, SessionCodec, same_token


def _blank_is_none(value: object) -> object:
    return None if value == "" else value


Blank = BeforeValidator(_blank_is_none)
"""A filter form sends its empty fields as ``name=``: empty means 'not filtered'."""


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    principal: Principal
    csrf: str

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin

    @property
    def account(self) -> str | None:
        """The account of an account key's session (None for the operator)."""
        scope = self.principal.scope
        return scope.slug if scope is not None else None

    @property
    def label(self) -> str:
        return "operator" if self.is_admin else f"account {self.account}"


def codec_of(request: Request) -> SessionCodec:
    codec: SessionCodec = request.app.state.console_sessions
    return codec


async def get_user(request: Request, container: ContainerDep) -> ConsoleUser:
    claims = codec_of(request).read(request.cookies.get(COOKIE))
    if claims is None:
        raise Unauthenticated("log in to use the console")
    if claims.who == "admin":
        principal = Principal(is_admin=True)
    else:
        assert claims.key_hash is not None
        principal = await container.tenancy.authenticate_digest(claims.key_hash)
    user = ConsoleUser(principal=principal, csrf=claims.csrf)
    request.state.console_user = user
    return user


UserDep = Annotated[ConsoleUser, Depends(get_user)]


async def require_csrf(request: Request, user: UserDep) -> ConsoleUser:
    """Every state-changing console request carries the session's CSRF token, as a form field
    or (htmx) the X-CSRF-Token header; SameSite=Strict is the second wall, not the only one."""
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not same_token(user.csrf, given):
        raise Forbidden(
            "the form's CSRF token is missing or not this session's: reload the page",
            code="CSRF_FAILED",
        )
    return user


CsrfUserDep = Annotated[ConsoleUser, Depends(require_csrf)]


async def require_operator(user: UserDep) -> ConsoleUser:
    if not user.is_admin:
        raise Forbidden("this page needs the admin key", code="ADMIN_REQUIRED")
    return user


OperatorDep = Annotated[ConsoleUser, Depends(require_operator)]


async def get_page_scope(
    account: AccountSlug, user: UserDep, container: ContainerDep
) -> AccountScope:
    scope = await container.tenancy.resolve(user.principal, account)
    logs.bind(account=scope.slug)
    return scope


PageScopeDep = Annotated[AccountScope, Depends(get_page_scope)]
