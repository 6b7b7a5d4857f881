"""The run resource — create (background, stream or wait), read, wait, follow its events from
any point (``Last-Event-ID``), cancel, list a conversation's runs — and ``POST …/chat``, the
thin form of a run (enqueue, cancelled when its client goes away) answering as it always has:
the reply as JSON, or text deltas, tool calls and results and ``done`` as Server-Sent Events."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from switchboard.api.deps import AgentSlug, ContainerDep, ScopeDep
from switchboard.api.errors import error_body
from switchboard.errors import InvalidRequest, NotFound
from switchboard.pagination import DEFAULT_LIMIT, MAX_LIMIT
from switchboard.runs.schemas import EventView, RunOut, RunPage, RunView
from switchboard.runtime.delivery import PING_S, ended, run_error, run_events, stopped_error
from switchboard.runtime.runs import RunRequest
from switchboard.runtime.schemas import ChatIn, ChatOut, IdempotencyKey, RunIn
from switchboard.schemas import SafeStr

router = APIRouter(prefix="/v1/accounts/{account}/agents/{agent}", tags=["chat"])
_CHAT_EVENTS = ("delta", "tool_call", "tool_result")


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
    request: Request,
    idempotency_key: IdempotencyKey = None,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    stream = body.stream or (accept is not None and "text/event-stream" in accept)
    runs = container.runs
    submitted = await runs.submit(
        scope,
        agent,
        RunRequest(
            message=body.message,
            conversation=body.conversation_id,
            user=body.user,
            on_disconnect="cancel",
        ),
        idempotency_key=idempotency_key,
        streaming=stream,
    )
    run = submitted.run
    headers = {"Idempotent-Replayed": "true"} if submitted.replayed else {}
    if stream:
        return EventSourceResponse(
            run_events(runs, scope, run.id, after=0, cancel_on_disconnect=True, render=_chat_event),
            ping=PING_S,
            headers=headers,
        )
    outcome = await ended(request, runs, scope, submitted, cancel_on_disconnect=True)
    if outcome.error is not None:
        raise outcome.error
    return JSONResponse(_chat_out(outcome.run).model_dump(mode="json"), headers=headers)


def _chat_out(run: RunView) -> ChatOut:
    if run.status != "succeeded" or not run.result:
        raise run_error(run)
    return ChatOut.model_validate(
        {"conversation_id": run.conversation_id, "run_id": run.id, **run.result}
    )


def _chat_event(event: EventView) -> ServerSentEvent | None:
    """The run's events as /chat has always streamed them."""
    data = event.data
    if event.type in _CHAT_EVENTS:
        return ServerSentEvent(json.dumps(data, ensure_ascii=False), event=event.type)
    if event.type == "done":
        out = ChatOut.model_validate(data)
        return ServerSentEvent(out.model_dump_json(), event="done")
    if event.type == "error":
        body = error_body(
            data["code"], data["message"], retryable=data["retryable"], kind=data["class"]
        )
        return ServerSentEvent(json.dumps(body), event="error")
    if event.type in ("cancelled", "interrupted"):
        error = stopped_error(event)
        body = error_body(error.code, error.message, retryable=error.retryable, kind=error.kind)
        return ServerSentEvent(json.dumps(body), event="error")
    return None


runs_router = APIRouter(prefix="/v1/accounts/{account}", tags=["runs"])
RUNS = "/agents/{agent}/runs"
MAX_WAIT_S = 300.0


def _run_response(
    run: RunView, *, status: int = 200, replayed: bool = False, headers: dict[str, str]
) -> Any:
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(RunOut.of(run).model_dump(mode="json"), status_code=status, headers=headers)


def _of_agent(run: RunView, agent: str) -> RunView:
    if run.agent_slug != agent:
        raise NotFound(f"run '{run.id}' not found", code="RUN_NOT_FOUND")
    return run


@runs_router.post(
    RUNS,
    response_model=RunOut,
    status_code=200,
    summary="Start a run: wait for it (default), stream its events, or run it in the background",
    responses={
        202: {"model": RunOut, "description": "Accepted: a background run"},
        200: {"content": {"text/event-stream": {}}},
    },
)
async def create_run(
    agent: AgentSlug,
    body: RunIn,
    scope: ScopeDep,
    container: ContainerDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    if body.background and body.on_disconnect == "cancel":
        raise InvalidRequest(
            "a background run always continues: on_disconnect=cancel needs background=false",
            code="VALIDATION_ERROR",
        )
    stream = body.stream or (accept is not None and "text/event-stream" in accept)
    if body.background and stream:
        raise InvalidRequest(
            "choose background (202 now) or stream (events now), not both; follow a "
            "background run at its events URL",
            code="VALIDATION_ERROR",
        )
    runs = container.runs
    submitted = await runs.submit(
        scope,
        agent,
        RunRequest(
            message=body.message,
            conversation=body.conversation_id,
            user=body.user,
            strategy=body.multitask_strategy,
            on_disconnect="continue" if body.background else (body.on_disconnect or "continue"),
            background=body.background,
        ),
        idempotency_key=idempotency_key,
        streaming=stream,
    )
    run = submitted.run
    location = str(request.url_for("get_run", account=scope.slug, agent=agent, run_id=run.id))
    if body.background:
        return _run_response(
            run, status=202, replayed=submitted.replayed, headers={"Location": location}
        )
    cancel = run.on_disconnect == "cancel"
    if stream:
        headers = {"Content-Location": location}
        if submitted.replayed:
            headers["Idempotent-Replayed"] = "true"
        return EventSourceResponse(
            run_events(runs, scope, run.id, after=0, cancel_on_disconnect=cancel),
            ping=PING_S,
            headers=headers,
        )
    outcome = await ended(request, runs, scope, submitted, cancel_on_disconnect=cancel)
    return _run_response(
        outcome.run, replayed=submitted.replayed, headers={"Content-Location": location}
    )


@runs_router.get(RUNS + "/{run_id}", response_model=RunOut, summary="A run", name="get_run")
async def get_run(
    agent: AgentSlug, run_id: uuid.UUID, scope: ScopeDep, container: ContainerDep
) -> RunOut:
    return RunOut.of(_of_agent(await container.runs.runs.get(scope, run_id), agent))


@runs_router.get(
    RUNS + "/{run_id}/wait",
    response_model=RunOut,
    summary="The run once it has ended (or as it is after timeout_s)",
)
async def wait_run(
    agent: AgentSlug,
    run_id: uuid.UUID,
    scope: ScopeDep,
    container: ContainerDep,
    timeout_s: Annotated[float, Query(gt=0, le=MAX_WAIT_S)] = 60.0,
) -> RunOut:
    _of_agent(await container.runs.runs.get(scope, run_id), agent)
    return RunOut.of(await container.runs.wait(scope, run_id, timeout_s=timeout_s))


@runs_router.get(
    RUNS + "/{run_id}/events",
    summary="The run's events as Server-Sent Events, from the start or after Last-Event-ID",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def run_events_route(
    agent: AgentSlug,
    run_id: uuid.UUID,
    scope: ScopeDep,
    container: ContainerDep,
    after: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    last_event_id: Annotated[SafeStr | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> Any:
    _of_agent(await container.runs.runs.get(scope, run_id), agent)
    start = after
    if start is None and last_event_id is not None:
        if not last_event_id.isdigit():
            raise InvalidRequest(
                "Last-Event-ID must be the id of an event of this run", code="INVALID_EVENT_ID"
            )
        start = int(last_event_id)
    return EventSourceResponse(
        run_events(container.runs, scope, run_id, after=start or 0, cancel_on_disconnect=False),
        ping=PING_S,
    )


@runs_router.post(
    RUNS + "/{run_id}/cancel",
    response_model=RunOut,
    summary="Cancel a pending or running run (idempotent; an ended run is returned as it is)",
)
async def cancel_run(
    agent: AgentSlug, run_id: uuid.UUID, scope: ScopeDep, container: ContainerDep
) -> RunOut:
    _of_agent(await container.runs.runs.get(scope, run_id), agent)
    return RunOut.of(await container.runs.cancel(scope, run_id))


@runs_router.get(
    "/conversations/{conversation_id}/runs",
    response_model=RunPage,
    summary="A conversation's runs, newest first",
)
async def conversation_runs(
    conversation_id: uuid.UUID,
    scope: ScopeDep,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[SafeStr | None, Query(max_length=500)] = None,
) -> RunPage:
    rows, next_cursor = await container.runs.runs.of_conversation(
        scope, conversation_id, cursor=cursor, limit=limit
    )
    return RunPage(items=[RunOut.of(r) for r in rows], next_cursor=next_cursor)
