"""``X-Request-ID``: accepted from the client or made here, bound to every log line of the
request (and of the runs it starts), and returned on every response."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard import logs

HEADER = b"x-request-id"
MAX_LENGTH = 128
_VALID = re.compile(rf"[\x20-\x7e]{{1,{MAX_LENGTH}}}")  # printable ASCII
_CONTEXT_KEY = "switchboard.log_context"


def accepted(value: bytes | None) -> str | None:
    """A client's request id if it is printable ASCII of at most 128 characters."""
    if value is None:
        return None
    text = value.decode("latin-1").strip()
    return text if _VALID.fullmatch(text) else None


def log_context_of(scope: Scope) -> Mapping[str, str]:
    """The log ids of a request, for the server-error handler, which runs outside the
    middleware: the ids bound when the error left the application."""
    context: Mapping[str, str] = scope.get(_CONTEXT_KEY, {})
    return context


class RequestIds:
    """Pure ASGI middleware: binds a fresh log context with the request id around the
    application and sets ``X-Request-ID`` on the response (replacing one the app set)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(HEADER)
        request_id = accepted(given) or uuid.uuid4().hex
        header = (HEADER, request_id.encode("ascii"))
        scope[_CONTEXT_KEY] = {"request_id": request_id}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        with logs.replaced({"request_id": request_id}):
            try:
                await self.app(scope, receive, send_with_id)
            except BaseException:
                scope[_CONTEXT_KEY] = logs.current()  # with the account, if it was resolved
                raise
