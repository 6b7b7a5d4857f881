"""The one cache helper, and the rules of each place that uses it."""

from __future__ import annotations

from typing import Any

import pytest

import tests.tools  # noqa: F401  (imported before any test, so loading a tool never reads files)
from switchboard.bootstrap import Container
from switchboard.cache import Cache
from switchboard.config.schema import EffectiveConfig
from switchboard.db.uow import AccountScope, UnitOfWork
from switchboard.errors import ConfigurationError, NotFound
from switchboard.registry.repository import ConfigLayerRepository
from switchboard.registry.service import ACCOUNT_CONFIGS
from switchboard.tenancy.service import SCOPE_CACHE_TTL_S, Principal, TenancyService
from tests.conftest import unique


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_full_cache_evicts_the_least_recently_used() -> None:
    cache: Cache[str, int] = Cache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert len(cache) == 2 == cache.max_size
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)


def test_put_replaces_without_evicting() -> None:
    cache: Cache[str, int] = Cache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 10)
    assert (len(cache), cache.get("a"), cache.get("b")) == (2, 10, 2)


def test_entries_expire_after_the_ttl() -> None:
    clock = FakeClock()
    cache: Cache[str, int] = Cache(10, ttl_s=30, clock=clock)
    cache.put("a", 1)
    clock.now += 29.9
    assert cache.get("a") == 1
    cache.put("b", 2)
    clock.now += 0.1
    assert cache.get("a") is None  # 30 s after its put, even though it was read since
    assert cache.get("b") == 2
    assert len(cache) == 1
    cache.put("a", 3)  # a new put starts a new lifetime
    clock.now += 29
    assert cache.get("a") == 3


def test_invalidate_and_clear() -> None:
    cache: Cache[str, int] = Cache(10)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.invalidate("a")
    cache.invalidate("never-cached")  # not an error
    assert (cache.get("a"), cache.get("b")) == (None, 2)
    cache.clear()
    assert len(cache) == 0
    assert cache.get("b") is None


@pytest.mark.parametrize(("max_size", "ttl_s"), [(0, None), (1, 0.0), (1, -1.0)])
def test_rejects_a_cache_that_cannot_hold_anything(max_size: int, ttl_s: float | None) -> None:
    with pytest.raises(ValueError, match="must be"):
        Cache[str, int](max_size, ttl_s=ttl_s)


# registry: account config, keyed by account and checked against the layers' version


async def _put_account_layer(container: Container, scope: AccountScope, data: Any) -> None:
    async def op(u: UnitOfWork) -> None:
        await ConfigLayerRepository(u).put(source="test", data=data, account_id=u.account.id)

    await container.uow.run(op, scope=scope)


async def test_account_config_is_cached_until_a_layer_write(
    container: Container, account: AccountScope
) -> None:
    await _put_account_layer(container, account, {"system_prompt": "first"})
    first = await container.agents.account_config(account)
    assert first.system_prompt == "first"
    assert await container.agents.account_config(account) is first  # served from the cache
    assert len(ACCOUNT_CONFIGS) <= ACCOUNT_CONFIGS.max_size

    # No invalidation: the write bumps the layer's version, which every read checks (as it
    # would see a write made by another process).
    await _put_account_layer(container, account, {"system_prompt": "second"})
    second = await container.agents.account_config(account)
    assert second.system_prompt == "second"
    cached = ACCOUNT_CONFIGS.get(account.id)
    assert cached is not None
    assert cached[1] is second  # one entry per account: the new version replaced the old


async def test_account_config_after_invalidation_is_rebuilt(
    container: Container, account: AccountScope
) -> None:
    first = await container.agents.account_config(account)
    ACCOUNT_CONFIGS.invalidate(account.id)
    again = await container.agents.account_config(account)
    assert again == first
    assert again is not first


# tenancy: slug → scope for admin requests, with a TTL


async def test_account_scope_is_cached_for_the_ttl(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    tenancy = TenancyService(container.uow, admin_key=None, clock=clock)
    admin = Principal(is_admin=True)
    slug = unique("acct")
    with pytest.raises(NotFound):
        await tenancy.resolve(admin, slug)
    created = await tenancy.create_account(slug=slug, name=slug)
    scope = await tenancy.resolve(admin, slug)  # a miss is not cached: seen at once
    assert scope == AccountScope(id=created.id, slug=slug)

    reads: list[str] = []
    get_account = tenancy.get_account

    async def counting(slug: str) -> Any:
        reads.append(slug)
        return await get_account(slug)

    monkeypatch.setattr(tenancy, "get_account", counting)
    clock.now += SCOPE_CACHE_TTL_S - 1
    assert await tenancy.resolve(admin, slug) is scope
    assert reads == []
    clock.now += 1
    assert await tenancy.resolve(admin, slug) == scope
    assert reads == [slug]  # expired: read from the database again


# runtime: one pydantic-ai Agent per tool set


def _tools_config(**values: Any) -> EffectiveConfig:
    return EffectiveConfig.model_validate(
        {"tools": ["boom"], "custom_tools": {"boom": "tests.tools:boom"}, **values}
    )


def test_agent_is_shared_per_tool_set(container: Container) -> None:
    allowed = _tools_config(tool_modules=["tests"])
    agent = container.chat._agent_for(allowed)
    assert container.chat._agent_for(_tools_config(tool_modules=["tests"])) is agent
    assert container.chat._agent_for(_tools_config(tool_modules=["tests.tools"])) is not agent
    assert container.chat._agent_for(allowed.model_copy(update={"tools": []})) is not agent


def test_cached_agent_does_not_skip_the_tool_allow_list(container: Container) -> None:
    container.chat._agent_for(_tools_config(tool_modules=["tests"]))
    # Same tools, but the module is no longer allowed: the cached Agent must not be reused.
    with pytest.raises(ConfigurationError):
        container.chat._agent_for(_tools_config(tool_modules=[]))
