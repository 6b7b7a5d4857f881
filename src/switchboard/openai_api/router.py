"""``GET /v1/models`` (the agents a key may call) and ``POST /v1/chat/completions`` (a run of
the agent named by ``model``). Stateless by default — the request's messages are the history,
stored in a new conversation and billed — or stateful when the client names a conversation
(``X-Switchboard-Conversation-Id`` or ``metadata.conversation_id``): the client's history is
matched against the stored one, and an edited one forks (``X-Switchboard-Forked-From``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from openai.types import Model
from sse_starlette import EventSourceResponse, ServerSentEvent

from switchboard import logs
from switchboard.api.deps import ContainerDep, PrincipalDep
from switchboard.bootstrap import Container
from switchboard.db.uow import AccountScope
from switchboard.errors import Forbidden, NotFound
from switchboard.openai_api import responses
from switchboard.openai_api.errors import (
    OPENAI_ERROR_RESPONSES,
    OpenAIRoute,
    model_not_found,
)
from switchboard.openai_api.history import (
    CONVERSATION_HEADER,
    conversation_of,
    run_request,
    strategy_of,
)
from switchboard.openai_api.render import ChunkStream, ToolView, completion, tool_text
from switchboard.openai_api.schemas import ChatCompletionIn
from switchboard.registry.schemas import AgentFilters
from switchboard.runs.schemas import RunView
from switchboard.runtime.chat import TurnPlan
from switchboard.runtime.delivery import (
    PING_S,
    ended,
    rendered_events,
    run_error,
    stored_events,
)
from switchboard.runtime.runs import RunRequest, Submitted
from switchboard.runtime.schemas import IdempotencyKey
from switchboard.schemas import SafeStr
from switchboard.tenancy.service import Principal

router = APIRouter(
    prefix="/v1", tags=["openai"], route_class=OpenAIRoute, responses=OPENAI_ERROR_RESPONSES
)
PAGE = 200
MAX_MODELS = 10_000


async def _agents(container: Container, scope: AccountScope) -> list[Any]:
    found: list[Any] = []
    cursor = None
    while len(found) < MAX_MODELS:
        rows, cursor = await container.agents.page(
            scope, AgentFilters(enabled=True), cursor=cursor, limit=PAGE
        )
        found.extend(rows)
        if cursor is None:
            break
    return found


@router.get("/models", summary="The agents this key may call, as OpenAI models")
async def list_models(principal: PrincipalDep, container: ContainerDep) -> Any:
    models: list[dict[str, Any]] = []
    if principal.is_admin:
        for account in await container.tenancy.accounts():
            scope = await container.tenancy.resolve(principal, account.slug)
            models.extend(
                _model(a, f"{account.slug}/{a.slug}") for a in await _agents(container, scope)
            )
    else:
        assert principal.scope is not None
        models = [_model(a, a.slug) for a in await _agents(container, principal.scope)]
    return {"object": "list", "data": models}


def _model(agent: Any, model_id: str) -> dict[str, Any]:
    return Model(
        id=model_id,
        object="model",
        created=int(agent.created_at.timestamp()),
        owned_by=model_id.split("/")[0] if "/" in model_id else "switchboard",
    ).model_dump(mode="json", exclude_none=True)


async def _scope_and_agent(
    container: Container, principal: Principal, model: str
) -> tuple[AccountScope, str]:
    """``model`` → (account, agent): 'agent' with an account key (or 'own-account/agent'),
    'account/agent' with the admin key. Anything else is an unknown model (404)."""
    account, _, agent = model.rpartition("/")
    logs.bind(agent=agent or None)
    if not agent or "/" in account:
        raise model_not_found(model)
    if principal.is_admin and not account:
        raise model_not_found(model)
    try:
        if principal.is_admin:
            scope = await container.tenancy.resolve(principal, account)
        else:
            assert principal.scope is not None
            if account and account != principal.scope.slug:
                raise model_not_found(model)
            scope = principal.scope
        logs.bind(account=scope.slug)
        return scope, agent
    except NotFound:
        raise model_not_found(model) from None


async def _plan(container: Container, principal: Principal, model: str) -> TurnPlan:
    """The agent ``model`` names, checked and planned before anything is written; an unknown
    (or another account's) agent is an unknown model."""
    scope, agent = await _scope_and_agent(container, principal, model)
    try:
        return await container.chat.plan(scope, agent)
    except NotFound as error:
        if error.code == "AGENT_NOT_FOUND":
            raise model_not_found(model) from None
        raise


def _headers(submitted: Submitted) -> dict[str, str]:
    run = submitted.run
    headers = {
        "X-Switchboard-Run-Id": str(run.id),
        CONVERSATION_HEADER: str(run.conversation_id),
    }
    if submitted.forked_from is not None:
        headers["X-Switchboard-Forked-From"] = str(submitted.forked_from)
    if submitted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return headers


@router.post(
    "/chat/completions",
    summary="OpenAI Chat Completions: model = an agent; JSON, or chunks with stream=true",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionIn,
    principal: PrincipalDep,
    container: ContainerDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
    conversation_id: Annotated[
        SafeStr | None, Header(alias=CONVERSATION_HEADER, max_length=64)
    ] = None,
) -> Any:
    plan = await _plan(container, principal, body.model)
    scope = plan.scope
    run_for = run_request(
        body, plan.config, conversation_of(body, conversation_id), keyed=idempotency_key is not None
    )
    runs = container.runs
    stream = bool(body.stream)
    submitted = await runs.submit_planned(
        plan, run_for, idempotency_key=idempotency_key, streaming=stream
    )
    headers = _headers(submitted)
    mode = plan.config.openai.tool_calls
    if stream:
        chunks = ChunkStream(
            run=submitted.run,
            model=body.model,
            forked_from=submitted.forked_from,
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
            tools=ToolView(mode),
        )
        return EventSourceResponse(
            rendered_events(
                runs,
                scope,
                submitted.run.id,
                after=0,
                cancel_on_disconnect=run_for.on_disconnect == "cancel",
                render=chunks.events,
            ),
            ping=PING_S,
            headers=headers,
        )
    cancel = run_for.on_disconnect == "cancel"
    outcome = await ended(request, runs, scope, submitted, cancel_on_disconnect=cancel)
    if outcome.error is not None:
        raise outcome.error
    run = outcome.run
    if run.status != "succeeded" or not run.result:
        raise run_error(run)
    shown = {} if mode == "hidden" else await tool_text(stored_events(runs, scope, run.id), mode)
    return JSONResponse(completion(run, body.model, submitted.forked_from, shown), headers=headers)


# --- Responses ------------------------------------------------------------------------------


def _account_scope(principal: Principal) -> AccountScope:
    """Responses are read and cancelled with the account's own key (the operator reads runs
    through the REST API, which names the account)."""
    if principal.scope is None:
        raise Forbidden(
            "responses are read with the account's key; with the admin key use "
            "GET /v1/accounts/{account}/agents/{agent}/runs/{run_id}",
            code="ACCOUNT_KEY_REQUIRED",
        )
    return principal.scope


def _rendering(run: RunView, model: str, previous: str | None = None) -> responses.Rendering:
    return responses.Rendering(run=run, model=model, previous=previous)


@router.post(
    "/responses",
    summary="OpenAI Responses: model = an agent; previous_response_id / conversation continue",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def create_response(
    body: responses.ResponseIn,
    principal: PrincipalDep,
    container: ContainerDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    plan = await _plan(container, principal, body.model)
    scope = plan.scope
    ask = responses.asked(body)
    ref = responses.conversation_ref(body)
    after_run = None
    if body.previous_response_id is not None:
        after_run = responses.run_id_of(body.previous_response_id, "previous_response_id")
        previous = await container.runs.runs.get(scope, after_run)  # 404 if not this account's
        ref = previous.conversation_id
    background = bool(body.background)
    stream = bool(body.stream)
    keep_going = background or idempotency_key is not None
    run_for = RunRequest(
        message=ask.message,
        conversation=ref,
        user=body.user,
        strategy=strategy_of(body.metadata),
        on_disconnect="continue" if keep_going else "cancel",
        background=background,
        client=ask.history if ref is None and after_run is None else None,
        settings=responses.settings_of(body, plan.config),
        after_run=after_run,
    )
    runs = container.runs
    submitted = await runs.submit_planned(
        plan, run_for, idempotency_key=idempotency_key, streaming=stream
    )
    headers = _headers(submitted)
    rendering = responses.Rendering(
        run=submitted.run,
        model=body.model,
        previous=body.previous_response_id,
        forked_from=submitted.forked_from,
    )
    if stream:
        return EventSourceResponse(
            _response_events(container, scope, rendering, after=-1, cancel=not keep_going),
            ping=PING_S,
            headers=headers,
        )
    if background:
        return JSONResponse(rendering.response(), headers=headers)
    outcome = await ended(request, runs, scope, submitted, cancel_on_disconnect=not keep_going)
    rendering.run = outcome.run
    return JSONResponse(
        await responses.snapshot(rendering, stored_events(runs, scope, outcome.run.id)),
        headers=headers,
    )


def _response_events(
    container: Container,
    scope: AccountScope,
    rendering: responses.Rendering,
    *,
    after: int,
    cancel: bool,
) -> AsyncIterator[ServerSentEvent]:
    """The response's stream events numbered after ``after``, rendered from the run's events
    from its first (so the numbering is always the same)."""
    return rendered_events(
        container.runs,
        scope,
        rendering.run.id,
        after=0,
        cancel_on_disconnect=cancel,
        render=lambda followed: responses.stream(rendering, followed, after=after),
    )


def _model_of(scope: AccountScope, principal: Principal, run: RunView) -> str:
    return run.agent_slug if not principal.is_admin else f"{scope.slug}/{run.agent_slug}"


@router.get(
    "/responses/{response_id}",
    summary="A response; with stream=true its events, resumed after starting_after",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def get_response(
    response_id: Annotated[SafeStr, Path(max_length=64)],
    principal: PrincipalDep,
    container: ContainerDep,
    stream: bool = False,
    starting_after: Annotated[int, Query(ge=-1, le=2**31 - 1)] = -1,
) -> Any:
    scope = _account_scope(principal)
    run = await container.runs.runs.get(scope, responses.run_id_of(response_id))
    rendering = _rendering(run, _model_of(scope, principal, run))
    if stream:
        return EventSourceResponse(
            _response_events(container, scope, rendering, after=starting_after, cancel=False),
            ping=PING_S,
        )
    return await responses.snapshot(rendering, stored_events(container.runs, scope, run.id))


@router.post("/responses/{response_id}/cancel", summary="Cancel a response (its run)")
async def cancel_response(
    response_id: Annotated[SafeStr, Path(max_length=64)],
    principal: PrincipalDep,
    container: ContainerDep,
) -> Any:
    scope = _account_scope(principal)
    run = await container.runs.cancel(scope, responses.run_id_of(response_id))
    rendering = _rendering(run, _model_of(scope, principal, run))
    return await responses.snapshot(rendering, stored_events(container.runs, scope, run.id))
