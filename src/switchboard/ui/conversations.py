"""Conversations: the account's list, and one conversation's timeline — each turn (run) with its
messages, the tool calls it made and their results, and what it cost (from the ledger)."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from switchboard.api.deps import ContainerDep
from switchboard.bootstrap import Container
from switchboard.conversations.schemas import ConversationOut, MessageOut
from switchboard.db.uow import AccountScope
from switchboard.ledger.schemas import LedgerFilters
from switchboard.runs.schemas import RunView
from switchboard.schemas import SafeStr
from switchboard.ui.deps import PageScopeDep
from switchboard.ui.errors import ConsoleRoute
from switchboard.ui.render import next_page, render

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)
PAGE = 50
MAX_MESSAGES = 1000  # a longer conversation shows its first 1 000 messages, and says so
MAX_LEDGER_ROWS = 2000


@dataclass(frozen=True, slots=True)
class ToolPart:
    kind: str  # call | result | retry
    tool: str
    text: str


@dataclass(slots=True)
class Turn:
    run_id: uuid.UUID | None
    run: RunView | None = None
    messages: list[MessageOut] = field(default_factory=list)
    calls: int = 0
    cost_nano_usd: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


def tool_parts(message: MessageOut) -> list[ToolPart]:
    """The tool calls or results a stored Pydantic AI message carries."""
    data: Any = message.data
    parts = data.get("parts") if isinstance(data, dict) else None
    found: list[ToolPart] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        kind = {"tool-call": "call", "tool-return": "result", "retry-prompt": "retry"}.get(
            str(part.get("part_kind"))
        )
        if kind is None:
            continue
        value = part.get("args") if kind == "call" else part.get("content")
        text = value if isinstance(value, str) else json.dumps(value, default=str, indent=1)
        found.append(ToolPart(kind=kind, tool=str(part.get("tool_name") or "?"), text=text))
    return found


@router.get("/accounts/{account}/conversations")
async def conversations(
    request: Request,
    scope: PageScopeDep,
    container: ContainerDep,
    agent: Annotated[SafeStr | None, Query(max_length=64)] = None,
    cursor: Annotated[SafeStr | None, Query(max_length=500)] = None,
) -> Response:
    rows, next_cursor = await container.conversations.page(
        scope, agent=agent or None, cursor=cursor, limit=PAGE
    )
    return render(
        request,
        "conversations.html",
        account=scope.slug,
        agent=agent or "",
        rows=[ConversationOut.model_validate(r) for r in rows],
        next_url=next_page(
            f"/ui/accounts/{scope.slug}/conversations", {"agent": agent}, next_cursor
        ),
    )


async def _turns(
    container: Container, scope: AccountScope, conversation_id: uuid.UUID
) -> tuple[list[Turn], bool]:
    messages: list[MessageOut] = []
    cursor: str | None = None
    while len(messages) < MAX_MESSAGES:
        rows, cursor = await container.conversations.messages(
            scope, conversation_id, cursor=cursor, limit=min(500, MAX_MESSAGES - len(messages))
        )
        messages.extend(MessageOut.model_validate(r) for r in rows)
        if cursor is None:
            break
    truncated = cursor is not None
    runs, _ = await container.runs.runs.of_conversation(
        scope, conversation_id, cursor=None, limit=MAX_MESSAGES
    )
    by_id = {run.id: run for run in runs}
    ledger, _ = await container.ledger.page(
        scope, LedgerFilters(conversation_id=conversation_id), cursor=None, limit=MAX_LEDGER_ROWS
    )
    spend: dict[uuid.UUID, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in ledger:
        totals = spend[row.run_id]
        totals[0] += 1
        totals[1] += row.cost_nano_usd
        totals[2] += row.input_tokens
        totals[3] += row.output_tokens
    turns: list[Turn] = []
    for message in messages:
        if not turns or turns[-1].run_id != message.run_id:
            run = by_id.get(message.run_id) if message.run_id is not None else None
            turns.append(Turn(run_id=message.run_id, run=run))
        turns[-1].messages.append(message)
    for turn in turns:
        if turn.run_id is not None and turn.run_id in spend:
            turn.calls, turn.cost_nano_usd, turn.input_tokens, turn.output_tokens = spend.pop(
                turn.run_id
            )
    return turns, truncated


@router.get("/accounts/{account}/conversations/{conversation_id}")
async def conversation(
    request: Request, scope: PageScopeDep, conversation_id: uuid.UUID, container: ContainerDep
) -> Response:
    turns, truncated = await _turns(container, scope, conversation_id)
    return render(
        request,
        "conversation.html",
        account=scope.slug,
        conversation_id=conversation_id,
        turns=turns,
        truncated=truncated,
        tool_parts=tool_parts,
        total_cost=sum(t.cost_nano_usd for t in turns),
    )
