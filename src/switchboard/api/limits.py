"""Reject request bodies over the configured size before the application reads them."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard.api.errors import error_body
from switchboard.errors import PayloadTooLarge


def too_large_message(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


class BodySizeLimit:
    """Pure ASGI middleware: every body is limited to ``max_bytes`` — by its Content-Length, or
    counted as a chunked body arrives (buffering at most that much) — except on the routes of
    ``large_bodies`` (an exact method and route template → its own limit, e.g. the bulk import).
    Those are only checked by their Content-Length here and never buffered: their handler
    authenticates first, then streams the body through :func:`read_body`, which enforces the
    same limit, so an unauthenticated request never makes the server read a large body."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        large_bodies: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._large: list[tuple[str, re.Pattern[str], int]] = [
            (method.upper(), compile_path(template)[0], max(limit, max_bytes))
            for (method, template), limit in (large_bodies or {}).items()
        ]

    def limit_for(self, method: str, path: str) -> tuple[int, bool]:
        """The body limit of a request, and whether its handler streams the body itself."""
        for large_method, pattern, limit in self._large:
            if method == large_method and pattern.match(path):
                return limit, True
        return self.max_bytes, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):  # routes are matched below the mount point
            path = path[len(root) :]
        limit, streamed = self.limit_for(scope["method"], path)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        # With a Transfer-Encoding the server reads the body by its chunks, whatever the
        # Content-Length says (h11 does): only a body without one can be judged by its length.
        encoded = b"transfer-encoding" in headers
        if length is not None and not encoded:
            try:
                too_large = int(length) > limit
            except ValueError:
                too_large = False
            if too_large:
                await _reject(send, limit)
                return
            await self.app(scope, receive, send)
            return
        if streamed or not encoded:
            await self.app(scope, receive, send)
            return
        chunks: list[Message] = []
        size = 0
        while True:
            message = await receive()
            chunks.append(message)
            size += len(message.get("body", b""))
            if size > limit:
                await _reject(send, limit)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)


async def read_body(stream: AsyncIterator[bytes], *, limit: int) -> bytes:
    """A streamed request body, refused with 413 as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(too_large_message(limit))
        chunks.append(chunk)
    return b"".join(chunks)


async def _reject(send: Send, limit: int) -> None:
    body = json.dumps(error_body("PAYLOAD_TOO_LARGE", too_large_message(limit), retryable=False))
    encoded = body.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(encoded)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": encoded})
