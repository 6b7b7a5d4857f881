"""Log in with the admin key or an account key; log out. The key is checked by the same service
as the API's bearer keys and never stored: the cookie holds who logged in, signed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from switchboard.api.deps import ContainerDep
from switchboard.errors import Unauthenticated
from switchboard.ui.deps import CsrfUserDep, codec_of
from switchboard.ui.errors import ConsoleRoute
from switchboard.ui.render import render
from switchboard.ui.session import COOKIE, LOGIN_COOKIE, LOGIN_TTL_S, PATH

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only a console path: never another site (``//evil``, ``https://…``)."""
    if not target or not target.startswith("/ui") or target.startswith("//"):
        return "/ui/"
    return target


def secure(request: Request) -> bool:
    mode = request.app.state.container.settings.console_secure_cookie
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    """Every console cookie: HttpOnly, SameSite=Strict, on /ui, Secure as configured."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=secure(request),
    )


def _login_page(request: Request, *, target: str, error: str | None, status: int) -> Response:
    cookie, token = codec_of(request).login_token()
    response = render(
        request, "login.html", status_code=status, user=None, next=target, csrf=token, error=error
    )
    _set_cookie(response, request, LOGIN_COOKIE, cookie, LOGIN_TTL_S)
    return response


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, target=safe_next(next), error=None, status=200)


@router.post("/login")
async def login(
    request: Request,
    container: ContainerDep,
    key: Annotated[str, Form(max_length=512)],
    csrf_token: Annotated[str, Form(max_length=512)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/ui/",
) -> Response:
    target = safe_next(next)
    codec = codec_of(request)
    if not codec.login_token_ok(request.cookies.get(LOGIN_COOKIE), csrf_token):
        return _login_page(
            request, target=target, error="The form expired: please log in again.", status=403
        )
    key = key.strip()
    if container.tenancy.is_admin_key(key):
        cookie, _ = codec.issue_admin()
    else:
        try:
            await container.tenancy.authenticate(key)
        except Unauthenticated:
            return _login_page(request, target=target, error="Invalid or revoked key.", status=401)
        cookie, _ = codec.issue_key(key)
    response = RedirectResponse(target, status_code=303)
    _set_cookie(response, request, COOKIE, cookie, codec.max_age_s)
    response.delete_cookie(LOGIN_COOKIE, path=PATH)
    return response


@router.post("/logout")
async def logout(_: CsrfUserDep) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
    return response
