from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from switchboard.api.deps import ContainerDep, ScopeDep
from switchboard.conversations.schemas import (
    ConversationOut,
    ConversationPage,
    MessageOut,
    MessagePage,
)
from switchboard.pagination import DEFAULT_LIMIT, MAX_LIMIT
from switchboard.schemas import SafeStr

router = APIRouter(prefix="/v1/accounts/{account}/conversations", tags=["conversations"])
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[SafeStr | None, Query(max_length=500)]


@router.get("", response_model=ConversationPage, summary="Conversations, newest first")
async def list_conversations(
    scope: ScopeDep,
    container: ContainerDep,
    agent: Annotated[SafeStr | None, Query(max_length=64)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> ConversationPage:
    rows, next_cursor = await container.conversations.page(
        scope, agent=agent, cursor=cursor, limit=limit
    )
    return ConversationPage(
        items=[ConversationOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/{conversation_id}/messages",
    response_model=MessagePage,
    summary="A conversation's messages in order",
)
async def list_messages(
    conversation_id: uuid.UUID,
    scope: ScopeDep,
    container: ContainerDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> MessagePage:
    rows, next_cursor = await container.conversations.messages(
        scope, conversation_id, cursor=cursor, limit=limit
    )
    return MessagePage(items=[MessageOut.model_validate(r) for r in rows], next_cursor=next_cursor)
