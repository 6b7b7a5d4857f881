from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from switchboard.api.deps import AgentSlug, ContainerDep, ScopeDep
from switchboard.api.errors import error_body
from switchboard.errors import SwitchboardError
from switchboard.runtime.chat import ChatInput, PreparedTurn
from switchboard.runtime.events import Delta, Done, ToolCalled, ToolReturned
from switchboard.runtime.schemas import ChatIn, ChatOut

log = logging.getLogger("switchboard.chat")
router = APIRouter(prefix="/v1/accounts/{account}/agents/{agent}", tags=["chat"])


@router.post(
    "/chat",
    response_model=ChatOut,
    summary="Send a message; JSON reply, or Server-Sent Events with stream=true",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat(
    agent: AgentSlug,
    body: ChatIn,
    scope: ScopeDep,
    container: ContainerDep,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    turn = await container.chat.prepare(
        scope,
        agent,
        ChatInput(message=body.message, conversation=body.conversation_id, user=body.user),
    )
    if body.stream or (accept is not None and "text/event-stream" in accept):
        return EventSourceResponse(_events(container.chat.run(turn), turn), ping=15)
    done = await container.chat.complete(turn)
    return JSONResponse(ChatOut.of(done).model_dump(mode="json"))


async def _events(run: AsyncIterator[Any], turn: PreparedTurn) -> AsyncIterator[ServerSentEvent]:
    try:
        async for event in run:
            if isinstance(event, Delta):
                yield ServerSentEvent(json.dumps({"text": event.text}), event="delta")
            elif isinstance(event, ToolCalled):
                yield ServerSentEvent(
                    json.dumps(
                        {"id": event.id, "name": event.name, "args": event.args}, default=str
                    ),
                    event="tool_call",
                )
            elif isinstance(event, ToolReturned):
                yield ServerSentEvent(
                    json.dumps({"id": event.id, "name": event.name, "content": event.content}),
                    event="tool_result",
                )
            elif isinstance(event, Done):
                yield ServerSentEvent(ChatOut.of(event).model_dump_json(), event="done")
    except SwitchboardError as exc:
        log.warning("chat run %s failed: %s", turn.run_id, exc)
        body = error_body(exc.code, exc.message, retryable=exc.retryable, kind=exc.kind)
        yield ServerSentEvent(json.dumps(body), event="error")
    except Exception:
        log.exception("chat run %s failed", turn.run_id)
        body = error_body("INTERNAL_ERROR", "internal server error", retryable=False, kind="fatal")
        yield ServerSentEvent(json.dumps(body), event="error")
