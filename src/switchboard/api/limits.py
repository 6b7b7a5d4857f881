"""Reject request bodies over the configured size before the application reads them."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard.api.errors import error_body


class BodySizeLimit:
    """Pure ASGI middleware: checks Content-Length, and counts chunked bodies as they arrive
    (buffering at most the limit). Paths ending in ``:import`` (bulk imports) get
    ``max_import_bytes`` instead of ``max_bytes``."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_import_bytes: int = 0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_import_bytes = max(max_import_bytes, max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_import_bytes if scope["path"].endswith(":import") else self.max_bytes
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_large = int(length) > limit
            except ValueError:
                too_large = False
            if too_large:
                await self._reject(send, limit)
                return
            await self.app(scope, receive, send)
            return
        if headers.get(b"transfer-encoding", b"").lower() != b"chunked":
            await self.app(scope, receive, send)
            return
        chunks: list[Message] = []
        size = 0
        while True:
            message = await receive()
            chunks.append(message)
            size += len(message.get("body", b""))
            if size > limit:
                await self._reject(send, limit)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send, limit: int) -> None:
        body = json.dumps(
            error_body(
                "PAYLOAD_TOO_LARGE",
                f"the request body is larger than {limit} bytes",
                retryable=False,
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
