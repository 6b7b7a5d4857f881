"""Accounts (budget gauges, keys, agents) and agents (the effective config, each value with the
layer it came from — the ``explain`` view)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from switchboard.api.deps import AgentSlug, ContainerDep
from switchboard.config import cascade
from switchboard.db.base import utcnow
from switchboard.registry.schemas import AgentFilters
from switchboard.ui.deps import PageScopeDep, UserDep
from switchboard.ui.errors import ConsoleRoute
from switchboard.ui.render import render

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)
MAX_AGENTS = 500


@router.get("/accounts")
async def accounts(request: Request, user: UserDep, container: ContainerDep) -> Response:
    if not user.is_admin:
        return RedirectResponse(f"/ui/accounts/{user.account}", status_code=303)
    today = utcnow().date()
    since = today.replace(day=1)
    rows = await container.ledger.rollup(None, since=since, until=today + timedelta(days=1))
    month: dict[str, tuple[int, int]] = {}
    for row in rows:
        cost, calls = month.get(row.account_slug, (0, 0))
        month[row.account_slug] = (cost + row.cost_nano_usd, calls + row.requests)
    return render(
        request,
        "accounts.html",
        accounts=await container.tenancy.accounts(),
        month=month,
        since=since,
    )


@router.get("/accounts/{account}")
async def account(
    request: Request, scope: PageScopeDep, user: UserDep, container: ContainerDep
) -> Response:
    agents, _ = await container.agents.page(scope, AgentFilters(), cursor=None, limit=MAX_AGENTS)
    keys: list[Any] = []
    if user.is_admin:  # as in the API: listing an account's keys is the operator's
        keys, _ = await container.tenancy.list_keys(scope, cursor=None, limit=200)
    return render(
        request,
        "account.html",
        account=await container.tenancy.get_account(scope.slug),
        budgets=await container.budgets.statuses(scope),
        agents=agents,
        keys=keys,
    )


@router.get("/accounts/{account}/agents/{agent}")
async def agent(
    request: Request, scope: PageScopeDep, agent: AgentSlug, container: ContainerDep
) -> Response:
    resolved = await container.agents.resolve(scope, agent)
    return render(
        request,
        "agent.html",
        account=scope.slug,
        agent=resolved.agent,
        sources=list(cascade.explain(resolved.merged)),
    )
