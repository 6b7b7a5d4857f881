"""How a run reaches its client over HTTP: its stored events as Server-Sent Events (``id:`` =
the event's seq, so a client resumes with ``Last-Event-ID``), a wait that notices a client gone,
and what ``on_disconnect`` does then."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeVar

from fastapi import Request
from sse_starlette import ServerSentEvent

from switchboard.db.uow import AccountScope
from switchboard.errors import SwitchboardError, error_for_code
from switchboard.runs.schemas import EventView, RunView
from switchboard.runtime.runs import Outcome, RunManager, Submitted

T = TypeVar("T")
PING_S = 15
WAIT_S = 24 * 3600.0  # how long a waiting request follows a run another process executes


def sse(event: EventView) -> ServerSentEvent:
    return ServerSentEvent(
        json.dumps(event.data, ensure_ascii=False), event=event.type, id=str(event.seq)
    )


def run_error(run: RunView) -> SwitchboardError:
    """The error a run that did not succeed answers with (its stored one, else why it
    stopped)."""
    cancelled = run.status == "cancelled"
    return error_for_code(
        run.error_code or ("RUN_CANCELLED" if cancelled else "RUN_INTERRUPTED"),
        run.error_message or f"the run was {run.status}",
        run.error_class or ("permanent" if cancelled else "transient"),
    )


def stopped_error(event: EventView) -> SwitchboardError:
    """The error a terminal event other than ``done`` stands for (``error``, ``cancelled``,
    ``interrupted``)."""
    data = event.data
    if event.type == "error":
        return error_for_code(data["code"], data["message"], data["class"])
    cancelled = event.type == "cancelled"
    return error_for_code(
        "RUN_CANCELLED" if cancelled else "RUN_INTERRUPTED",
        f"the run was {event.type}",
        "permanent" if cancelled else "transient",
    )


async def stored_events(
    manager: RunManager, scope: AccountScope, run_id: uuid.UUID
) -> AsyncIterator[EventView]:
    """The run's events stored so far, in order (never waits for more)."""
    after = 0
    while True:
        _, events = await manager.runs.events(scope, run_id, after=after)
        for event in events:
            after = event.seq
            yield event
        if not events:
            return


Renderer = Callable[[AsyncIterator[EventView]], AsyncIterator[ServerSentEvent]]


async def rendered_events(
    manager: RunManager,
    scope: AccountScope,
    run_id: uuid.UUID,
    *,
    after: int,
    cancel_on_disconnect: bool,
    render: Renderer,
) -> AsyncIterator[ServerSentEvent]:
    """The run's events after ``after``, followed live and rendered by ``render`` (which may
    end the stream early, at the event it takes for the last). If the client goes away before
    the end and ``cancel_on_disconnect``, the run is cancelled (its spend recorded)."""
    ended = False
    try:
        async with aclosing(manager.follow(scope, run_id, after=after)) as followed:  # type: ignore[type-var]
            async for rendered in render(followed):
                yield rendered
        ended = True
    finally:
        if not ended and cancel_on_disconnect:
            manager.disconnected(scope, run_id)


def run_events(
    manager: RunManager,
    scope: AccountScope,
    run_id: uuid.UUID,
    *,
    after: int,
    cancel_on_disconnect: bool,
    render: Callable[[EventView], ServerSentEvent | None] = sse,
) -> AsyncIterator[ServerSentEvent]:
    """``rendered_events`` one event at a time (``render`` returns None to skip one)."""

    async def each(followed: AsyncIterator[EventView]) -> AsyncIterator[ServerSentEvent]:
        async for event in followed:
            rendered = render(event)
            if rendered is not None:
                yield rendered

    return rendered_events(
        manager, scope, run_id, after=after, cancel_on_disconnect=cancel_on_disconnect, render=each
    )


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
