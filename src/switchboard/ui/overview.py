"""The overview: cost, calls and tokens per day (stacked by agent or model), top accounts and
agents, errors by class and latency percentiles — all from the per-day usage rollup that each
ledger settlement keeps, never a scan of the ledger."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from switchboard.api.deps import ContainerDep
from switchboard.db.base import utcnow
from switchboard.schemas import SafeStr
from switchboard.ui.charts import build_overview, parse_days
from switchboard.ui.deps import UserDep
from switchboard.ui.errors import ConsoleRoute
from switchboard.ui.render import render

router = APIRouter(prefix="/ui", route_class=ConsoleRoute, include_in_schema=False)


@router.get("/")
async def overview(
    request: Request,
    user: UserDep,
    container: ContainerDep,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    stack: Literal["agent", "model"] = "agent",
    account: Annotated[SafeStr | None, Query(max_length=64)] = None,
) -> Response:
    since, until = parse_days(days, today=utcnow().date())
    chosen = account or user.account
    scope = None if chosen is None else await container.tenancy.resolve(user.principal, chosen)
    rows = await container.ledger.rollup(scope, since=since, until=until)
    overview = build_overview(
        rows,
        since=since,
        until=until,
        stack=stack,
        cross_account=scope is None,
    )
    return render(
        request,
        "overview.html",
        ov=overview,
        days=days,
        account=scope.slug if scope else "",
        accounts=await container.tenancy.accounts() if user.is_admin else [],
    )
