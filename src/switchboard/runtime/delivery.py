"""How a run reaches its client over HTTP: its stored events as Server-Sent Events (``id:`` =
the event's seq, so a client resumes with ``Last-Event-ID``), a wait that notices a client gone,
and what ``on_disconnect`` does then."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from sse_starlette import ServerSentEvent

from switchboard.db.uow import AccountScope
from switchboard.runs.schemas import EventView
from switchboard.runtime.runs import Outcome, RunManager, Submitted

T = TypeVar("T")
PING_S = 15
WAIT_S = 24 * 3600.0  # how long a waiting request follows a run another process executes


def sse(event: EventView) -> ServerSentEvent:
    return ServerSentEvent(
        json.dumps(event.data, ensure_ascii=False), event=event.type, id=str(event.seq)
    )


async def run_events(
    manager: RunManager,
    scope: AccountScope,
    run_id: uuid.UUID,
    *,
    after: int,
    cancel_on_disconnect: bool,
    render: Callable[[EventView], ServerSentEvent | None] = sse,
) -> AsyncIterator[ServerSentEvent]:
    """The run's events after ``after`` as SSE. If the client goes away before the end and
    ``cancel_on_disconnect``, the run is cancelled (its spend recorded)."""
    ended = False
    try:
        async for event in manager.follow(scope, run_id, after=after):
            rendered = render(event)
            if rendered is not None:
                yield rendered
        ended = True
    finally:
        if not ended and cancel_on_disconnect:
            manager.disconnected(scope, run_id)


async def until_disconnected(request: Request) -> None:
    """Returns when the client has closed its connection (the body has been read by then)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def ended(
    request: Request,
    manager: RunManager,
    scope: AccountScope,
    submitted: Submitted,
    *,
    cancel_on_disconnect: bool,
) -> Outcome:
    """A submitted run once it has ended: its outcome when this process executes it (a client
    that leaves first cancels it if ``cancel_on_disconnect``), else the run as read once ended
    (a replay of a run another process executes)."""
    run_id = submitted.run.id
    if submitted.local is None:
        return Outcome(await manager.wait(scope, run_id, timeout_s=WAIT_S))
    on_disconnect = (
        (lambda: manager.disconnected(scope, run_id)) if cancel_on_disconnect else (lambda: None)
    )
    return await unless_disconnected(request, submitted.local.outcome, on_disconnect)


async def unless_disconnected(
    request: Request, work: Awaitable[T], on_disconnect: Callable[[], Any]
) -> T:
    """Await ``work``; if the client disconnects first, call ``on_disconnect`` and keep
    awaiting ``work`` (its outcome is recorded either way)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(until_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            on_disconnect()
        return await task
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
