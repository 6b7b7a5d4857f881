from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from switchboard.api.deps import AdminScopeDep, ContainerDep, ScopeDep
from switchboard.money import nano_to_usd_str, usd_to_nano
from switchboard.schemas import SafeStr, Slug, StrictModel
from switchboard.traffic.budgets import BudgetStatus

router = APIRouter(prefix="/v1/accounts/{account}", tags=["budget"])


class BudgetIn(StrictModel):
    limit_usd: Decimal = Field(ge=0, le=Decimal("1000000000"), max_digits=19, decimal_places=9)
    period: Literal["day", "month"] = "month"
    agent: Slug | None = Field(default=None, description="Omit for the whole account")


class BudgetOut(BaseModel):
    agent: str | None
    period: str
    period_start: str
    limit_usd: str
    spent_usd: str
    reserved_usd: str
    remaining_usd: str

    @classmethod
    def of(cls, status: BudgetStatus) -> BudgetOut:
        return cls(
            agent=status.agent,
            period=status.period,
            period_start=status.period_start,
            limit_usd=nano_to_usd_str(status.limit_nano_usd),
            spent_usd=nano_to_usd_str(status.spent_nano_usd),
            reserved_usd=nano_to_usd_str(status.reserved_nano_usd),
            remaining_usd=nano_to_usd_str(status.remaining_nano_usd),
        )


@router.put("/budget", response_model=BudgetOut, summary="Set a spend limit per period (admin)")
async def put_budget(body: BudgetIn, scope: AdminScopeDep, container: ContainerDep) -> BudgetOut:
    status = await container.budgets.put(
        scope, agent=body.agent, period=body.period, limit_nano_usd=usd_to_nano(body.limit_usd)
    )
    return BudgetOut.of(status)


@router.get("/budget", response_model=BudgetOut, summary="Limit, spent, reserved, remaining")
async def get_budget(
    scope: ScopeDep,
    container: ContainerDep,
    agent: Annotated[SafeStr | None, Query(max_length=64)] = None,
) -> BudgetOut:
    return BudgetOut.of(await container.budgets.status(scope, agent=agent))
