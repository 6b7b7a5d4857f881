from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from switchboard.api.deps import ContainerDep, ScopeDep
from switchboard.ledger.models import LEDGER_STATUSES
from switchboard.ledger.schemas import (
    LedgerFilters,
    LlmRequestOut,
    LlmRequestPage,
    UsageOut,
    UsageReport,
)
from switchboard.pagination import DEFAULT_LIMIT, MAX_LIMIT, QueryTime, utc_query_time
from switchboard.schemas import SafeStr

router = APIRouter(prefix="/v1/accounts/{account}", tags=["ledger"])
Status = Literal["pending", "complete", "error", "cancelled", "interrupted"]
assert set(Status.__args__) == set(LEDGER_STATUSES)  # type: ignore[attr-defined]


@router.get(
    "/llm-requests",
    response_model=LlmRequestPage,
    summary="Ledger rows (one per provider call), newest first",
)
async def list_llm_requests(
    scope: ScopeDep,
    container: ContainerDep,
    conversation_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    agent: Annotated[SafeStr | None, Query(max_length=64)] = None,
    model: Annotated[SafeStr | None, Query(max_length=200)] = None,
    status: Status | None = None,
    since: QueryTime | None = None,
    until: QueryTime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[SafeStr | None, Query(max_length=500)] = None,
) -> LlmRequestPage:
    filters = LedgerFilters(
        conversation_id=conversation_id,
        run_id=run_id,
        agent=agent,
        model=model,
        status=status,
        since=utc_query_time(since, "since"),
        until=utc_query_time(until, "until"),
    )
    rows, next_cursor = await container.ledger.page(scope, filters, cursor=cursor, limit=limit)
    return LlmRequestPage(items=[LlmRequestOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/usage", response_model=UsageReport, summary="Usage and exact cost, grouped")
async def usage(
    scope: ScopeDep,
    container: ContainerDep,
    since: QueryTime | None = None,
    until: QueryTime | None = None,
    group_by: Literal["agent", "model", "day"] | None = None,
) -> UsageReport:
    filters = LedgerFilters(
        since=utc_query_time(since, "since"), until=utc_query_time(until, "until")
    )
    groups, total = await container.ledger.usage(scope, filters, group_by)
    return UsageReport(
        group_by=group_by, groups=[UsageOut.of(g) for g in groups], total=UsageOut.of(total)
    )
