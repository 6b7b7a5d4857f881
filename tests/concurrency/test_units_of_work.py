"""Rules 1–3: one unit of work per operation, never shared between tasks; only it commits."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from sqlalchemy import func, select, text

from switchboard.bootstrap import Container
from switchboard.db.uow import AccountScope, UnitOfWork, UnitOfWorkMisuse
from switchboard.errors import DatabaseBusy, NotFound
from switchboard.registry.models import Agent
from switchboard.registry.repository import AgentRepository
from switchboard.registry.schemas import AgentCreate, AgentFilters, AgentPatch


async def _count_agents(container: Container, account: AccountScope) -> int:
    async def op(u: UnitOfWork) -> int:
        result = await u.session.execute(
            select(func.count()).select_from(Agent).where(Agent.account_id == account.id)
        )
        return int(result.scalar_one())

    return await container.uow.run(op, scope=account, write=False)


async def test_leaving_without_commit_rolls_back(
    container: Container, account: AccountScope
) -> None:
    async with container.uow(scope=account) as u:
        await AgentRepository(u).insert({"slug": "temp", "display_name": "t"}, tags=["x"])
    assert await _count_agents(container, account) == 0

    async def keep(u: UnitOfWork) -> None:
        await AgentRepository(u).insert({"slug": "kept", "display_name": "k"}, tags=[])

    await container.uow.run(keep, scope=account)  # commits when the operation returns
    assert await _count_agents(container, account) == 1


async def test_error_inside_unit_of_work_rolls_back(
    container: Container, account: AccountScope
) -> None:
    async def op(u: UnitOfWork) -> None:
        await AgentRepository(u).insert({"slug": "half", "display_name": "h"}, tags=[])
        raise NotFound("boom")

    with pytest.raises(NotFound):
        await container.uow.run(op, scope=account)
    assert await _count_agents(container, account) == 0


async def test_a_unit_of_work_cannot_be_used_from_another_task(
    container: Container, account: AccountScope
) -> None:
    async with container.uow(scope=account, write=False) as u:
        await u.session.execute(text("SELECT 1"))

        async def borrow() -> None:
            await u.session.execute(text("SELECT 1"))

        # Two tool calls sharing one session is the bug this rules out: the second task fails
        # at once with a clear error instead of corrupting the session.
        with pytest.raises(UnitOfWorkMisuse):
            await asyncio.gather(borrow(), borrow())


async def test_concurrent_tasks_get_distinct_sessions(
    container: Container, account: AccountScope
) -> None:
    n = 20
    barrier = asyncio.Barrier(n)

    async def session_id() -> int:
        async with container.uow(scope=account, write=False) as u:
            await barrier.wait()  # all units of work are open at the same time
            await u.session.execute(text("SELECT 1"))
            return id(u.session)

    ids = await asyncio.gather(*(session_id() for _ in range(n)))
    assert len(set(ids)) == n


async def test_read_only_unit_of_work_cannot_commit(container: Container) -> None:
    async with container.uow(write=False) as u:
        with pytest.raises(UnitOfWorkMisuse):
            await u.session.commit()


async def test_transient_errors_retry_the_whole_unit_of_work(
    container: Container, account: AccountScope
) -> None:
    attempts = 0

    async def op(u: UnitOfWork) -> None:
        nonlocal attempts
        attempts += 1
        await AgentRepository(u).insert({"slug": f"r{attempts}", "display_name": "r"}, tags=[])
        if attempts < 3:
            raise DatabaseBusy("simulated lock", retry_after_s=0)

    await container.uow.run(op, scope=account)
    assert attempts == 3
    async with container.uow(scope=account, write=False) as u:
        rows = await AgentRepository(u).page(filters=AgentFilters(), after=None, limit=10)
    # The failed attempts rolled back: only the third attempt's row exists.
    assert [a.slug for a in rows] == ["r3"]


async def test_an_insisting_write_outlasts_the_ordinary_retry_budget(
    container: Container,
) -> None:
    """Writes after a provider call (settlement, a run's finish) never fail on contention: they
    retry past the attempts and time an ordinary unit of work gets."""
    busy_for = container.uow.retry.attempts + 3
    attempts = 0

    async def op(_: UnitOfWork) -> int:
        nonlocal attempts
        attempts += 1
        if attempts <= busy_for:
            raise DatabaseBusy("simulated lock", retry_after_s=0)
        return attempts

    with pytest.raises(DatabaseBusy):
        await container.uow.run(op)
    assert attempts == container.uow.retry.attempts
    attempts = 0
    assert await container.uow.run(op, insist=True) == busy_for + 1


async def test_permanent_errors_are_not_retried(container: Container) -> None:
    attempts = 0

    async def op(_: UnitOfWork) -> None:
        nonlocal attempts
        attempts += 1
        raise NotFound("nope")

    with pytest.raises(NotFound):
        await container.uow.run(op)
    assert attempts == 1


async def test_200_concurrent_mixed_reads_and_writes(
    container: Container, account: AccountScope
) -> None:
    n = 200
    barrier = asyncio.Barrier(n)

    async def work(i: int) -> str:
        await barrier.wait()
        if i % 4 == 0:
            await container.agents.create(
                account, AgentCreate(slug=f"m-{i}", tags=["load"]), actor="tenant"
            )
            return "write"
        if i % 4 == 1:
            try:
                await container.agents.update(
                    account, "m-0", AgentPatch(description=str(i)), actor="tenant"
                )
            except NotFound:
                return "miss"  # m-0 may not exist yet: a legitimate answer, not an error
            return "patch"
        rows, _ = await container.agents.page(account, AgentFilters(), cursor=None, limit=20)
        assert all(row.slug.startswith("m-") for row in rows)
        return "read"

    outcomes = Counter(await asyncio.gather(*(work(i) for i in range(n))))
    assert outcomes["write"] == 50
    assert outcomes["read"] == 100
    assert outcomes["patch"] + outcomes["miss"] == 50
    assert await _count_agents(container, account) == 50


async def test_ids_are_uuids(container: Container, account: AccountScope) -> None:
    agent = await container.agents.create(account, AgentCreate(slug="uuid"), actor="tenant")
    assert isinstance(agent.id, uuid.UUID)
