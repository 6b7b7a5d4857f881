"""``switchboard apply``: make the database match a config tree, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field

from switchboard.config import cascade
from switchboard.config.schema import BudgetConfig
from switchboard.db.uow import AccountScope, CrossAccount, UnitOfWork, UnitOfWorkFactory
from switchboard.money import usd_to_nano
from switchboard.operations.config_tree import AgentSpec, ConfigTree
from switchboard.registry.service import AgentService, put_layer_in
from switchboard.tenancy.service import TenancyService
from switchboard.traffic.budgets import BudgetService


@dataclass(slots=True)
class ApplyReport:
    accounts_created: list[str] = field(default_factory=list)
    accounts_updated: list[str] = field(default_factory=list)
    agents_created: list[str] = field(default_factory=list)
    agents_updated: list[str] = field(default_factory=list)


class _DryRun(Exception):  # control flow: never leaves this module
    def __init__(self, report: ApplyReport) -> None:
        self.report = report


class ConfigApplier:
    def __init__(self, uow: UnitOfWorkFactory, *, agents: AgentService) -> None:
        self._uow = uow
        self._agents = agents

    async def apply(self, tree: ConfigTree, *, dry_run: bool = False) -> ApplyReport:
        """Create or update every account, agent and config layer of ``tree``; all or nothing.
        Running it twice changes nothing the second time. Agents absent from the tree are kept.
        ``dry_run`` does all of it — every check ``apply`` makes — and then rolls back."""

        async def op(u: UnitOfWork) -> ApplyReport:
            report = ApplyReport()
            if tree.global_layer is not None:
                await put_layer_in(
                    u, source=tree.global_layer.source, data=tree.global_layer.data, shared=True
                )
            for spec in tree.accounts:
                account, created = await TenancyService.ensure_account_in(
                    u, slug=spec.slug, name=spec.name
                )
                (report.accounts_created if created else report.accounts_updated).append(spec.slug)
                scoped = u.bound_to(AccountScope(id=account.id, slug=account.slug))
                if spec.layer is not None:
                    await put_layer_in(scoped, source=spec.layer.source, data=spec.layer.data)
                    await _apply_budget(scoped, spec.layer, agent=None)
                for agent_spec in spec.agents:
                    created = await self._apply_agent(scoped, agent_spec)
                    await _apply_budget(scoped, agent_spec.layer, agent=agent_spec.slug)
                    name = f"{spec.slug}/{agent_spec.slug}"
                    (report.agents_created if created else report.agents_updated).append(name)
            if dry_run:
                raise _DryRun(report)  # leaving the unit of work uncommitted rolls it back
            return report

        try:
            return await self._uow.run(
                op, scope=CrossAccount("apply: the global layer and every account of the tree")
            )
        except _DryRun as rolled_back:
            return rolled_back.report

    async def _apply_agent(self, u: UnitOfWork, spec: AgentSpec) -> bool:
        return await self._agents.apply_in(
            u, spec.profile, source=spec.layer.source, data=spec.layer.data
        )


async def _apply_budget(u: UnitOfWork, layer: cascade.Layer, *, agent: str | None) -> None:
    """A ``budget:`` in account.yaml or an agent's config.yaml becomes that budget's row (the
    database is the source of truth; the tree was validated before anything is applied)."""
    raw = layer.data.get("budget")
    if raw is None:
        return
    budget = BudgetConfig.model_validate(raw)
    await BudgetService.put_in(
        u, agent=agent, period=budget.period, limit_nano_usd=usd_to_nano(budget.limit_usd)
    )
