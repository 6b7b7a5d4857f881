"""Errors on the console are pages: a missing or stale session goes to the login page, any other
error of the taxonomy renders with its status and stable code. The taxonomy and its statuses are
the API's (``api/errors.py``); only the rendering differs."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from switchboard.api.errors import status_for, validation_error
from switchboard.errors import SwitchboardError, Unauthenticated
from switchboard.ui.render import render


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET" or not target.startswith("/ui"):
        target = "/ui/"
    return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)


def error_page(request: Request, error: SwitchboardError) -> Response:
    status = status_for(error)
    return render(
        request,
        "error.html",
        status_code=status,
        status=status,
        code=error.code,
        message=error.message,
        details=error.details or {},
    )


class ConsoleRoute(APIRoute):
    """A console route: errors render as pages; an unauthenticated request is sent to log in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthenticated:
                return login_redirect(request)
            except SwitchboardError as error:
                return error_page(request, error)
            except RequestValidationError as exc:
                return error_page(request, validation_error(exc))

        return route
