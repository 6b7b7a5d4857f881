"""`switchboard apply` and the legacy import: all or nothing, idempotent, sources explained."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from switchboard.bootstrap import Container
from switchboard.config import cascade
from switchboard.db.uow import AccountScope, CrossAccount, UnitOfWork
from switchboard.errors import InvalidRequest, NotFound
from switchboard.operations.apply import ConfigApplier
from switchboard.operations.config_tree import ConfigTreeInvalid, load_tree
from switchboard.registry.models import Agent
from switchboard.registry.schemas import AgentCreate, AgentFilters
from switchboard.registry.service import AgentService
from switchboard.tenancy.models import Account
from tests.conftest import unique
from tests.unit.test_config_tree import write


def tree_files(account: str) -> dict[str, str]:
    return {
        "global.yaml": "model_settings: {max_tokens: 300}\n",
        f"{account}/account.yaml": "name: Acme\nmodel_settings: {temperature: 0.4}\n",
        f"{account}/support/config.yaml": "display_name: Support\ntags: [x, y]\nmodel: openai:m1\n",
        f"{account}/sales/config.yaml": "team: revenue\n",
    }


async def scope_of(container: Container, slug: str) -> AccountScope:
    account = await container.tenancy.get_account(slug)
    return AccountScope(account.id, account.slug)


async def test_apply_creates_then_is_idempotent(container: Container, tmp_path: Path) -> None:
    slug = unique("acme")
    tree = await asyncio.to_thread(load_tree, write(tmp_path, tree_files(slug)))
    first = await ConfigApplier(container.uow, agents=container.agents).apply(tree)
    assert first.accounts_created == [slug]
    assert sorted(first.agents_created) == [f"{slug}/sales", f"{slug}/support"]

    scope = await scope_of(container, slug)
    before, _ = await container.agents.page(scope, AgentFilters(), cursor=None, limit=10)
    second = await ConfigApplier(container.uow, agents=container.agents).apply(tree)
    assert second.accounts_updated == [slug]
    assert second.agents_created == []
    after, _ = await container.agents.page(scope, AgentFilters(), cursor=None, limit=10)
    assert [(a.slug, a.display_name, a.tags, a.team) for a in after] == [
        (a.slug, a.display_name, a.tags, a.team) for a in before
    ]

    resolved = await container.agents.resolve(scope, "support")
    sources = {k: s for k, _, s in cascade.explain(resolved.merged)}
    root = str(tmp_path)
    assert resolved.config.model == "openai:m1"
    assert sources["model"] == f"{root}/{slug}/support/config.yaml"
    assert sources["model_settings.temperature"] == f"{root}/{slug}/account.yaml"
    assert sources["model_settings.max_tokens"] == f"{root}/global.yaml"
    assert sources["memory.max_messages"] == "default"


async def test_db_overrides_win_over_files(container: Container, tmp_path: Path) -> None:
    slug = unique("acme")
    await ConfigApplier(container.uow, agents=container.agents).apply(
        await asyncio.to_thread(load_tree, write(tmp_path, tree_files(slug)))
    )
    scope = await scope_of(container, slug)
    from switchboard.registry.schemas import AgentPatch

    await container.agents.update(
        scope,
        "support",
        AgentPatch(model="openai:m2", config={"model_settings": {"max_tokens": 42}}),
        actor="tenant",
    )
    resolved = await container.agents.resolve(scope, "support")
    sources = {k: s for k, _, s in cascade.explain(resolved.merged)}
    assert (resolved.config.model, sources["model"]) == ("openai:m2", "db")
    assert resolved.config.model_settings.max_tokens == 42
    assert sources["model_settings.max_tokens"] == "db"


async def _counts(container: Container) -> tuple[int, int]:
    async def op(u: UnitOfWork) -> tuple[int, int]:
        accounts = (await u.session.execute(select(func.count()).select_from(Account))).scalar()
        agents = (await u.session.execute(select(func.count()).select_from(Agent))).scalar()
        return int(accounts or 0), int(agents or 0)

    return await container.uow.run(
        op, scope=CrossAccount("test: agents of every account"), write=False
    )


async def test_apply_is_all_or_nothing(
    container: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure at the last agent leaves no account, agent or layer of the tree behind."""
    slug = unique("acme")
    files = tree_files(slug) | {f"{slug}/zz-last/config.yaml": "description: last\n"}
    tree = await asyncio.to_thread(load_tree, write(tmp_path, files))
    original = AgentService.check_config_in

    async def fail_on_last(self: AgentService, u: UnitOfWork, **kwargs: Any) -> None:
        if kwargs["agent"] is not None and kwargs["agent"].slug == "zz-last":
            raise InvalidRequest("injected failure", code="INVALID_CONFIG")
        await original(self, u, **kwargs)

    monkeypatch.setattr(AgentService, "check_config_in", fail_on_last)
    before = await _counts(container)
    with pytest.raises(InvalidRequest):
        await ConfigApplier(container.uow, agents=container.agents).apply(tree)
    assert await _counts(container) == before
    with pytest.raises(NotFound):
        await container.tenancy.get_account(slug)


async def test_legacy_import(container: Container, account: AccountScope) -> None:
    entries = [
        {"slug": "one", "model": "demo", "tags": ["a"]},
        {"slug": "two", "display_name": "Two", "enabled": False},
    ]
    created = await container.agents.import_legacy(account, entries)
    assert [a.slug for a in created] == ["one", "two"]


async def test_legacy_import_reports_every_problem_and_imports_nothing(
    container: Container, account: AccountScope
) -> None:
    await container.agents.create(account, AgentCreate(slug="taken"), actor="operator")
    entries: list[object] = [
        {"slug": "fine"},
        {"slug": "fine"},
        {"slug": "bad", "enabled": "sometimes"},
        "not an object",
        {"slug": "typo", "modle": "demo"},
        {"slug": "taken"},
        {"slug": "nomodel", "model": "nope:m"},
    ]
    with pytest.raises(InvalidRequest) as caught:
        await container.agents.import_legacy(account, entries)
    problems = caught.value.details["problems"]
    assert isinstance(problems, list)
    # both phases in one report: the file's shape, then the database and config checks
    assert [(p["index"], p["field"]) for p in problems] == [
        (1, "slug"),
        (2, "enabled"),
        (3, "(entry)"),
        (4, "modle"),
        (5, "slug"),
        (6, "config"),
    ]
    # and all-or-nothing
    with pytest.raises(InvalidRequest) as caught:
        await container.agents.import_legacy(account, [{"slug": "new"}, {"slug": "taken"}])
    assert caught.value.details["problems"] == [
        {"index": 1, "field": "slug", "message": "agent 'taken' already exists"}
    ]
    rows, _ = await container.agents.page(account, AgentFilters(), cursor=None, limit=10)
    assert [a.slug for a in rows] == ["taken"]


async def test_budgets_from_config_files(container: Container, tmp_path: Path) -> None:
    slug = unique("acme")
    files = tree_files(slug)
    files[f"{slug}/account.yaml"] += "budget: {limit_usd: '12.50', period: month}\n"
    files[f"{slug}/support/config.yaml"] += "budget: {limit_usd: '1', period: day}\n"
    await ConfigApplier(container.uow, agents=container.agents).apply(
        await asyncio.to_thread(load_tree, write(tmp_path, files))
    )
    scope = await scope_of(container, slug)
    account_budget = await container.budgets.status(scope, agent=None)
    agent_budget = await container.budgets.status(scope, agent="support")
    assert (account_budget.limit_nano_usd, account_budget.period) == (12_500_000_000, "month")
    assert (agent_budget.limit_nano_usd, agent_budget.period) == (1_000_000_000, "day")


async def test_budget_in_the_wrong_place_is_reported(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "global.yaml": "budget: {limit_usd: 5}\n",
            "acme/bot/config.yaml": "budget: {limit_usd: -1}\n",
        },
    )
    with pytest.raises(ConfigTreeInvalid) as caught:
        await asyncio.to_thread(load_tree, root)
    found = [str(p) for p in caught.value.problems]
    assert any("global.yaml: budget: budgets belong in" in p for p in found), found
    assert any("bot/config.yaml: budget.limit_usd" in p for p in found), found


async def test_budget_is_not_an_api_config_override(
    container: Container, account: AccountScope
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await container.agents.create(  # even the operator: budgets have their own API
            account, AgentCreate(slug="b", config={"budget": {"limit_usd": "1"}}), actor="operator"
        )
    assert caught.value.code == "INVALID_CONFIG"
    assert "PUT /v1/accounts/{account}/budget" in caught.value.message
