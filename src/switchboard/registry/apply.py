"""``switchboard apply``: make the database match a config tree, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field

from switchboard.db.uow import AccountScope, UnitOfWork, UnitOfWorkFactory
from switchboard.ledger.pricing import usd_to_nano
from switchboard.registry import cascade
from switchboard.registry.config_schema import BudgetConfig
from switchboard.registry.config_tree import AgentSpec, ConfigTree
from switchboard.registry.repository import AgentRepository, ConfigLayerRepository
from switchboard.registry.schemas import CASCADED_FIELDS, PROFILE_FIELDS
from switchboard.registry.service import AgentService
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
            layers = ConfigLayerRepository(u)
            if tree.global_layer is not None:
                await layers.put(source=tree.global_layer.source, data=tree.global_layer.data)
            for spec in tree.accounts:
                account, created = await TenancyService.ensure_account_in(
                    u, slug=spec.slug, name=spec.name
                )
                (report.accounts_created if created else report.accounts_updated).append(spec.slug)
                scoped = u.bound_to(AccountScope(id=account.id, slug=account.slug))
                if spec.layer is not None:
                    await layers.put(
                        source=spec.layer.source, data=spec.layer.data, account_id=account.id
                    )
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
            return await self._uow.run(op)
        except _DryRun as rolled_back:
            return rolled_back.report

    async def _apply_agent(self, u: UnitOfWork, spec: AgentSpec) -> bool:
        repo = AgentRepository(u)
        agent = await self._agents.create_in(u, spec.profile, actor="operator")
        created = agent is not None
        if agent is None:
            profile = spec.profile.model_dump(include=set(PROFILE_FIELDS) - {"tags"})
            profile["display_name"] = spec.profile.display_name or spec.slug
            await repo.update(spec.slug, profile)
            agent = await repo.get(spec.slug)
            assert agent is not None  # it conflicted, so it exists; this transaction holds it
            await repo.replace_tags(agent.id, spec.profile.tags)
        await ConfigLayerRepository(u).put(
            source=spec.layer.source,
            data=spec.layer.data,
            account_id=u.account.id,
            agent_id=agent.id,
        )
        fields = {name: getattr(agent, name) for name in CASCADED_FIELDS}
        await self._agents.check_config_in(
            u, agent=agent, fields=fields, overrides=agent.config, actor="operator"
        )
        return created


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
