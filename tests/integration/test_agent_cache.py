"""Resolved agents are cached per process, and a change made by any process — an agent update,
a config layer written, the agent deleted or re-created — is seen by the very next resolve: a
hit is used only once the database's version matches (one statement), never on trust."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event

from switchboard.bootstrap import Container, build_container
from switchboard.db.uow import AccountScope, UnitOfWork
from switchboard.errors import NotFound
from switchboard.registry.repository import ConfigLayerRepository
from switchboard.registry.schemas import AgentCreate, AgentPatch
from switchboard.settings import Settings


@pytest.fixture
async def other(settings: Settings) -> AsyncIterator[Container]:
    """Another server process on the same database (its own engine and services)."""
    built = await build_container(settings)
    try:
        yield built
    finally:
        await built.aclose()


async def _create(container: Container, account: AccountScope, prompt: str) -> None:
    data = AgentCreate.model_validate({"slug": "bot", "system_prompt": prompt})
    await container.agents.create(account, data, actor="operator")


async def test_a_change_by_another_process_is_seen_at_once(
    container: Container, other: Container, account: AccountScope
) -> None:
    await _create(container, account, "one")
    first = await container.agents.resolve(account, "bot")
    assert first.config.system_prompt == "one"
    assert (await container.agents.resolve(account, "bot")) is first  # a hit

    await other.agents.update(account, "bot", AgentPatch(system_prompt="two"), actor="operator")
    assert (await container.agents.resolve(account, "bot")).config.system_prompt == "two"

    async def account_layer(u: UnitOfWork) -> None:
        await ConfigLayerRepository(u).put(
            source="test", data={"memory": {"max_messages": 7}}, account_id=account.id
        )

    await other.uow.run(account_layer, scope=account)
    assert (await container.agents.resolve(account, "bot")).config.memory.max_messages == 7

    await other.agents.delete(account, "bot")
    await _create(other, account, "three")
    again = await container.agents.resolve(account, "bot")
    assert again.config.system_prompt == "three"
    assert again.agent.id != first.agent.id

    await other.agents.delete(account, "bot")
    with pytest.raises(NotFound):
        await container.agents.resolve(account, "bot")


async def test_a_hit_costs_one_statement(container: Container, account: AccountScope) -> None:
    await _create(container, account, "one")
    await container.agents.resolve(account, "bot")  # fills the cache
    selects: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    event.listen(container.engine.sync_engine, "before_cursor_execute", count)
    try:
        await container.agents.resolve(account, "bot")
    finally:
        event.remove(container.engine.sync_engine, "before_cursor_execute", count)
    assert len(selects) == 1, selects
