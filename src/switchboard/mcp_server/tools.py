"""The tools of one account: ``ask_<agent>`` for each enabled agent and ``search_<directory>``
for each directory of its config. Listing reads only the key's own account (the unit of work
is scoped to it), so another account's agents never appear.

Errors: a tool the account does not have (unknown, another account's, a disabled agent) is a
protocol error (``INVALID_PARAMS``, the cause in its message and ``data``); anything the call
itself runs into — bad arguments, budgets, limits, provider failures — is an ``isError`` result
carrying the REST error body (``{"error": {"code", "message", "retryable", "class"}}``)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolResult,
    TextContent,
    Tool,
    ToolAnnotations,
)
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from switchboard.api.errors import error_body
from switchboard.bootstrap import Container
from switchboard.config.directories import DirectoryConfig
from switchboard.db.uow import AccountScope
from switchboard.directory.schemas import SearchHitOut, SearchOut
from switchboard.directory.search import SearchMode
from switchboard.errors import InvalidRequest, SwitchboardError
from switchboard.registry.schemas import AgentFilters, AgentOut
from switchboard.runs.schemas import RunView
from switchboard.runtime.delivery import run_error
from switchboard.runtime.runs import RunRequest, Submitted
from switchboard.schemas import SafeStr, StrictModel

log = logging.getLogger("switchboard.mcp")

ASK = "ask_"
SEARCH = "search_"
AGENTS_PER_PAGE = 100
WAIT_S = 24 * 3600.0  # how long a call follows a run another process executes
MAX_FILTERS = 20
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?$")  # switchboard.schemas.Slug


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int


class AskIn(StrictModel):
    message: Annotated[SafeStr, StringConstraints(min_length=1, max_length=100_000)]
    conversation_id: uuid.UUID | Literal["default"] | None = None


class AskOut(BaseModel):
    """What ``ask_<agent>`` answers: the run's reply and exact cost (as ``POST …/chat``)."""

    reply: str
    conversation_id: uuid.UUID = Field(description="Pass it back to continue the conversation")
    run_id: uuid.UUID
    cost_usd: str = Field(description="Exact decimal string, USD")
    usage: Usage
    llm_request_ids: list[uuid.UUID] = Field(description="The ledger rows of this run")


FilterValue = str | int | float | bool | list[str | int | float | bool]


class SearchIn(StrictModel):
    query: Annotated[SafeStr, StringConstraints(max_length=1000)] = ""
    filters: dict[SafeStr, FilterValue] = Field(default_factory=dict, max_length=MAX_FILTERS)
    mode: SearchMode = "auto"
    limit: int = Field(default=10, ge=1, le=100)
    cursor: Annotated[SafeStr, StringConstraints(max_length=200)] | None = None


_ASK_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {
            "type": "string",
            "minLength": 1,
            "maxLength": 100_000,
            "description": "The message to send to the agent.",
        },
        "conversation_id": {
            "type": "string",
            "description": "Continue a conversation: the conversation_id of an earlier answer "
            "(or any UUID, created if new; or 'default'). Omit to start a new conversation.",
        },
    },
    "required": ["message"],
    "additionalProperties": False,
}
_ASK_OUTPUT = AskOut.model_json_schema()
_SEARCH_OUTPUT = SearchOut.model_json_schema()


# --- listing -----------------------------------------------------------------------------------


async def list_tools(
    container: Container, scope: AccountScope, *, cursor: str | None
) -> tuple[list[Tool], str | None]:
    """One page of the account's tools: its directories' searches first (on the first page),
    then its enabled agents by slug, ``AGENTS_PER_PAGE`` at a time."""
    tools: list[Tool] = []
    if cursor is None:
        schemas = await container.directories.schemas(scope)
        tools.extend(_search_tool(name, config) for name, config in sorted(schemas.items()))
    try:
        agents, next_cursor = await container.agents.page(
            scope, AgentFilters(enabled=True), cursor=cursor, limit=AGENTS_PER_PAGE
        )
    except InvalidRequest as exc:
        raise MCPError(INVALID_PARAMS, exc.message, {"code": exc.code}) from None
    tools.extend(_ask_tool(AgentOut.model_validate(agent)) for agent in agents)
    return tools, next_cursor


def _ask_tool(agent: AgentOut) -> Tool:
    description = agent.description.strip() or f"Ask the agent '{agent.display_name}'."
    return Tool(
        name=f"{ASK}{agent.slug}",
        title=agent.display_name,
        description=description,
        input_schema=_ASK_INPUT,
        output_schema=_ASK_OUTPUT,
    )


def _search_tool(name: str, config: DirectoryConfig) -> Tool:
    fields = "; ".join(
        f"{field} ({spec.type}{', filterable' if spec.is_filterable else ''})"
        + (f": {spec.description}" if spec.description else "")
        for field, spec in config.fields.items()
    )
    about = f" {config.description}." if config.description else ""
    filters: dict[str, Any] = {
        field: _filter_schema(spec.type)
        for field, spec in config.fields.items()
        if spec.is_filterable
    }
    return Tool(
        name=f"{SEARCH}{name}",
        title=f"Search {name}",
        description=f"Search the directory '{name}'.{about} Fields: {fields}.",
        input_schema={
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "maxLength": 1000,
                    "description": "Words to search for; may be empty with filters.",
                },
                "filters": {
                    "type": "object",
                    "properties": filters,
                    "additionalProperties": False,
                    "description": "Exact filters, field → value or list of values (any of "
                    "them); numbers also take a range such as '5..20'.",
                },
                "mode": {
                    "type": "string",
                    "enum": ["auto", "text", "semantic", "hybrid"],
                    "description": "auto: hybrid when the directory is semantic, else text.",
                },
                "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                "cursor": {"type": "string", "description": "next_cursor of the last page."},
            },
            "additionalProperties": False,
        },
        output_schema=_SEARCH_OUTPUT,
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True),
    )


def _filter_schema(field_type: str) -> dict[str, Any]:
    if field_type == "bool":
        return {"type": "boolean"}
    if field_type == "number":
        return {"type": ["number", "string"], "description": "A number, or a range like 5..20"}
    return {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    }


# --- calling -----------------------------------------------------------------------------------


async def call_tool(
    container: Container, scope: AccountScope, name: str, arguments: Mapping[str, Any] | None
) -> CallToolResult:
    try:
        if name.startswith(ASK):
            return await _ask(container, scope, name[len(ASK) :], name, arguments or {})
        if name.startswith(SEARCH):
            return await _search(container, scope, name[len(SEARCH) :], name, arguments or {})
    except SwitchboardError as exc:
        return _refused(exc)
    except MCPError:
        raise
    except Exception:
        # The legacy JSON-RPC path would send the exception's text to the client.
        log.exception("MCP tool %r failed", name)
        raise MCPError(INTERNAL_ERROR, "internal server error") from None
    raise _unknown(name, scope, "Switchboard tools are ask_<agent> and search_<directory>")


async def _ask(
    container: Container,
    scope: AccountScope,
    slug: str,
    name: str,
    arguments: Mapping[str, Any],
) -> CallToolResult:
    agent = await _agent(container, scope, slug, name)
    try:
        args = AskIn.model_validate(arguments)
    except ValidationError as exc:
        return _refused(_invalid(exc))
    submitted = await container.runs.submit(
        scope,
        agent.slug,
        RunRequest(
            message=args.message, conversation=args.conversation_id, on_disconnect="continue"
        ),
    )
    run = _succeeded(await _ended(container, scope, submitted))
    result = {"conversation_id": run.conversation_id, "run_id": run.id, **(run.result or {})}
    out = AskOut.model_validate(result)
    return _answer(out)


async def _agent(container: Container, scope: AccountScope, slug: str, name: str) -> AgentOut:
    if len(slug) > 64 or not _SLUG.fullmatch(slug):  # cannot exist: not worth a query
        raise _unknown(name, scope, f"no agent '{slug}' in this account")
    try:
        agent = AgentOut.model_validate(await container.agents.get(scope, slug))
    except SwitchboardError as exc:
        if exc.code == "AGENT_NOT_FOUND":
            raise _unknown(name, scope, f"no agent '{slug}' in this account") from None
        raise
    if not agent.enabled:
        raise MCPError(
            INVALID_PARAMS,
            f"tool '{name}' is not available: agent '{slug}' is disabled",
            {"code": "AGENT_DISABLED", "tool": name},
        )
    return agent


async def _ended(container: Container, scope: AccountScope, submitted: Submitted) -> RunView:
    """The run once ended. It continues if the client goes away (``on_disconnect=continue``):
    the shield keeps a cancelled call from cancelling the run's outcome."""
    if submitted.local is None:
        return await container.runs.wait(scope, submitted.run.id, timeout_s=WAIT_S)
    outcome = await asyncio.shield(submitted.local.outcome)
    if outcome.error is not None:
        raise outcome.error
    return outcome.run


def _succeeded(run: RunView) -> RunView:
    if run.status != "succeeded" or not run.result:
        raise run_error(run)
    return run


async def _search(
    container: Container,
    scope: AccountScope,
    directory: str,
    name: str,
    arguments: Mapping[str, Any],
) -> CallToolResult:
    schemas = await container.directories.schemas(scope)
    if directory not in schemas:
        raise _unknown(name, scope, f"no directory '{directory}' in this account")
    try:
        args = SearchIn.model_validate(arguments)
    except ValidationError as exc:
        return _refused(_invalid(exc))
    page = await container.directories.search(
        scope,
        directory,
        query=args.query,
        filters={field: _filter_values(value) for field, value in args.filters.items()},
        mode=args.mode,
        limit=args.limit,
        cursor=args.cursor,
    )
    out = SearchOut(
        items=[
            SearchHitOut(id=hit.entry.external_id, data=hit.entry.data, score=hit.score)
            for hit in page.hits
        ],
        mode=page.mode,
        next_cursor=page.next_cursor,
    )
    return _answer(out)


def _filter_values(value: FilterValue) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [
        ("true" if item else "false") if isinstance(item, bool) else str(item) for item in items
    ]


# --- results -----------------------------------------------------------------------------------


def _answer(out: BaseModel) -> CallToolResult:
    data = out.model_dump(mode="json")
    # The JSON as text too: clients of protocol versions without structured content read it.
    text = json.dumps(data, ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def _refused(error: SwitchboardError) -> CallToolResult:
    body = error_body(
        error.code,
        error.message,
        retryable=error.retryable,
        kind=error.kind,
        details=error.details,
    )
    text = json.dumps(body, ensure_ascii=False, default=str)
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=json.loads(text),
        is_error=True,
    )


def _invalid(exc: ValidationError) -> SwitchboardError:
    problems = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
        for e in exc.errors()
    ]
    listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return InvalidRequest(f"invalid arguments: {listed}", details={"problems": problems})


def _unknown(name: str, scope: AccountScope, reason: str) -> MCPError:
    return MCPError(
        INVALID_PARAMS,
        f"unknown tool '{name}' for account '{scope.slug}': {reason}",
        {"code": "TOOL_NOT_FOUND", "tool": name},
    )
