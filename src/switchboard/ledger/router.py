from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from switchboard.api.deps import ContainerDep, ScopeDep
from switchboard.errors import InvalidRequest
from switchboard.ledger.models import LEDGER_STATUSES
from switchboard.ledger.repository import LedgerFilters
from switchboard.ledger.schemas import LlmRequestOut, LlmRequestPage, UsageOut, UsageReport
from switchboard.pagination import DEFAULT_LIMIT, MAX_LIMIT

router = APIRouter(prefix="/v1/accounts/{account}", tags=["ledger"])
Status = Literal["pending", "complete", "error", "cancelled", "interrupted"]
assert set(Status.__args__) == set(LEDGER_STATUSES)  # type: ignore[attr-defined]


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidRequest(
            f"'{name}' needs a timezone, e.g. 2026-11-23T00:00:00Z", code="INVALID_QUERY"
        )
    return value


@router.get(
    "/llm-requests",
    response_model=LlmRequestPage,
    summary="Ledger rows (one per provider call), newest first",
)
async def list_llm_requests(
    scope: ScopeDep,
    container: ContainerDep,
    conversation_id: uuid.UUID | None = None,
    agent: Annotated[str | None, Query(max_length=64)] = None,
    status: Status | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> LlmRequestPage:
    filters = LedgerFilters(
        conversation_id=conversation_id,
        agent=agent,
        status=status,
        since=_aware(since, "since"),
        until=_aware(until, "until"),
    )
    rows, next_cursor = await container.ledger.page(scope, filters, cursor=cursor, limit=limit)
    return LlmRequestPage(items=[LlmRequestOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/usage", response_model=UsageReport, summary="Usage and exact cost, grouped")
async def usage(
    scope: ScopeDep,
    container: ContainerDep,
    since: datetime | None = None,
    until: datetime | None = None,
    group_by: Literal["agent", "model", "day"] | None = None,
) -> UsageReport:
    filters = LedgerFilters(since=_aware(since, "since"), until=_aware(until, "until"))
    groups, total = await container.ledger.usage(scope, filters, group_by)
    return UsageReport(
        group_by=group_by, groups=[UsageOut.of(g) for g in groups], total=UsageOut.of(total)
    )
