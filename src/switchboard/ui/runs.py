"""Runs: the account's runs (newest first, by status), one run's events — refreshed while the
run is active — its ledger rows, and a cancel button (a form with the session's CSRF token)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from switchboard.api.deps import ContainerDep
from switchboard.bootstrap import Container
from switchboard.db.uow import AccountScope
from switchboard.ledger.schemas import LedgerFilters, LlmRequestOut
from switchboard.schemas import SafeStr
from switchboard.ui.deps import Blank, CsrfUserDep, PageScopeDep
from switchboard.ui.errors import ConsoleRoute
from switchboard.ui.render import next_page, render

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)
PAGE = 50
MAX_EVENTS = 2000
RunStatus = Literal["pending", "running", "succeeded", "failed", "cancelled", "interrupted"]
STATUSES = ("pending", "running", "succeeded", "failed", "cancelled", "interrupted")
ACTIVE = ("pending", "running")


@router.get("/accounts/{account}/runs")
async def runs(
    request: Request,
    scope: PageScopeDep,
    container: ContainerDep,
    status: Annotated[RunStatus | None, Blank] = None,
    agent: Annotated[SafeStr | None, Query(max_length=64)] = None,
    cursor: Annotated[SafeStr | None, Query(max_length=500)] = None,
) -> Response:
    rows, next_cursor = await container.runs.runs.page(
        scope, status=status, agent=agent or None, cursor=cursor, limit=PAGE
    )
    return render(
        request,
        "runs.html",
        account=scope.slug,
        rows=rows,
        statuses=STATUSES,
        status=status or "",
        agent=agent or "",
        next_url=next_page(
            f"/ui/accounts/{scope.slug}/runs", {"status": status, "agent": agent}, next_cursor
        ),
    )


async def _run_page(
    request: Request, container: Container, scope: AccountScope, run_id: uuid.UUID, name: str
) -> Response:
    run, events = await container.runs.runs.events(scope, run_id, after=0, limit=MAX_EVENTS)
    rows, _ = await container.ledger.page(
        scope, LedgerFilters(run_id=run_id), cursor=None, limit=500
    )
    return render(
        request,
        name,
        account=scope.slug,
        run=run,
        events=events,
        ledger=[LlmRequestOut.of(r) for r in rows],
        active=run.status in ACTIVE,
    )


@router.get("/accounts/{account}/runs/{run_id}")
async def run(
    request: Request, scope: PageScopeDep, run_id: uuid.UUID, container: ContainerDep
) -> Response:
    return await _run_page(request, container, scope, run_id, "run.html")


@router.get("/accounts/{account}/runs/{run_id}/live")
async def run_live(
    request: Request, scope: PageScopeDep, run_id: uuid.UUID, container: ContainerDep
) -> Response:
    """The run page's live part (status, events, ledger), polled by htmx while it is active."""
    return await _run_page(request, container, scope, run_id, "run_live.html")


@router.post("/accounts/{account}/runs/{run_id}/cancel")
async def cancel(
    request: Request,
    scope: PageScopeDep,
    run_id: uuid.UUID,
    container: ContainerDep,
    _: CsrfUserDep,
) -> Response:
    await container.runs.cancel(scope, run_id)
    return RedirectResponse(f"/ui/accounts/{scope.slug}/runs/{run_id}", status_code=303)
