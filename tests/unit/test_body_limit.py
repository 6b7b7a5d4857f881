"""The body-size middleware at the ASGI level: what the server reads is what is counted."""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

from switchboard.api.limits import BodySizeLimit


async def _run(headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, int]:
    """(response status, body bytes the app read) for one request through the middleware."""
    read = 0
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal read
        while True:
            message = await receive()
            read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    pending = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> Message:
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/accounts/a/agents", "headers": headers}
    await BodySizeLimit(app, max_bytes=1024)(scope, receive, send)
    return int(sent[0]["status"]), read


async def test_a_small_content_length_does_not_hide_a_large_chunked_body() -> None:
    """h11 reads a body by its chunks when Transfer-Encoding is present, whatever the
    Content-Length says: trusting the length let any body through unauthenticated."""
    headers = [(b"content-length", b"10"), (b"transfer-encoding", b"chunked")]
    status, read = await _run(headers, [b"x" * 512] * 8)
    assert status == 413
    assert read == 0


async def test_bodies_within_the_limit_pass_whole() -> None:
    assert await _run([(b"content-length", b"600")], [b"x" * 600]) == (200, 600)
    assert await _run([(b"transfer-encoding", b"chunked")], [b"x" * 300] * 3) == (200, 900)
    assert (await _run([(b"content-length", b"2000")], [b"x" * 2000]))[0] == 413
