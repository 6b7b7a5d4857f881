"""The ledger: one row per provider call, filtered (agent, model, status, run, conversation,
dates), newest first in cursor pages, and one row's detail. Through the ledger service, as the
API reads it."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from switchboard.api.deps import ContainerDep
from switchboard.errors import NotFound
from switchboard.ledger.schemas import LedgerFilters, LlmRequestOut
from switchboard.schemas import SafeStr
from switchboard.ui.deps import Blank, PageScopeDep, UserDep
from switchboard.ui.errors import ConsoleRoute
from switchboard.ui.render import next_page, render

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)
PAGE = 50
Status = Literal["pending", "complete", "error", "cancelled", "interrupted"]
STATUSES = ("pending", "complete", "error", "cancelled", "interrupted")


def _start(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), tzinfo=UTC)


@router.get("/ledger")
async def ledger_pick(
    request: Request,
    user: UserDep,
    container: ContainerDep,
    account: Annotated[SafeStr | None, Query(max_length=64)] = None,
) -> Response:
    """The operator picks an account; an account key goes straight to its own ledger."""
    chosen = account if user.is_admin else user.account
    if chosen:
        scope = await container.tenancy.resolve(user.principal, chosen)
        return RedirectResponse(f"/ui/accounts/{scope.slug}/ledger", status_code=303)
    return render(request, "ledger_pick.html", accounts=await container.tenancy.accounts())


@router.get("/accounts/{account}/ledger")
async def ledger(
    request: Request,
    scope: PageScopeDep,
    container: ContainerDep,
    agent: Annotated[SafeStr | None, Query(max_length=64)] = None,
    model: Annotated[SafeStr | None, Query(max_length=200)] = None,
    status: Annotated[Status | None, Blank] = None,
    run_id: Annotated[uuid.UUID | None, Blank] = None,
    conversation_id: Annotated[uuid.UUID | None, Blank] = None,
    since: Annotated[date | None, Blank] = None,
    until: Annotated[date | None, Blank] = None,
    cursor: Annotated[SafeStr | None, Query(max_length=500)] = None,
) -> Response:
    filters = LedgerFilters(
        agent=agent or None,
        model=model or None,
        status=status,
        run_id=run_id,
        conversation_id=conversation_id,
        since=_start(since),
        until=_start(until + timedelta(days=1)) if until else None,  # the whole 'until' day
    )
    rows, next_cursor = await container.ledger.page(scope, filters, cursor=cursor, limit=PAGE)
    chosen = {
        "agent": agent or "",
        "model": model or "",
        "status": status or "",
        "run_id": str(run_id or ""),
        "conversation_id": str(conversation_id or ""),
        "since": since.isoformat() if since else "",
        "until": until.isoformat() if until else "",
    }
    return render(
        request,
        "ledger.html",
        account=scope.slug,
        rows=[LlmRequestOut.of(r) for r in rows],
        chosen=chosen,
        statuses=STATUSES,
        next_url=next_page(f"/ui/accounts/{scope.slug}/ledger", chosen, next_cursor),
        first_page=cursor is None,
    )


@router.get("/accounts/{account}/ledger/{row_id}")
async def ledger_row(
    request: Request, scope: PageScopeDep, row_id: uuid.UUID, container: ContainerDep
) -> Response:
    rows = await container.ledger.rows(scope, [row_id])
    if not rows:
        raise NotFound(f"no ledger row '{row_id}' in this account", code="LEDGER_ROW_NOT_FOUND")
    row = rows[0]
    return render(
        request,
        "ledger_row.html",
        account=scope.slug,
        row=LlmRequestOut.of(row),
        request_body=row.request_body,
        response_body=row.response_body,
    )
