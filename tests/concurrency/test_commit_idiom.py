"""Rule 1, one idiom: ``uow.run(operation, scope=…, write=…)`` commits when the operation
returns, and nothing else commits — not an operation, not a repository, not a test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import func, select

import switchboard
from switchboard.bootstrap import Container
from switchboard.db.uow import AccountScope, UnitOfWork, UnitOfWorkMisuse
from switchboard.registry.models import Agent
from switchboard.registry.repository import AgentRepository

SOURCE = Path(switchboard.__file__).parent
THE_UNIT_OF_WORK = SOURCE / "db" / "uow.py"
# The SQLite DBAPI adapter implements the driver's own ``commit()``, which SQLAlchemy calls when
# the unit of work commits; it decides nothing about when anything commits.
DBAPI_ADAPTER = SOURCE / "db" / "sqlite_driver.py"


async def _agents(container: Container, account: AccountScope) -> list[str]:
    async def op(u: UnitOfWork) -> list[str]:
        return list((await u.session.execute(select(Agent.slug))).scalars())

    return await container.uow.run(op, scope=account, write=False)


async def test_an_operation_that_commits_its_session_fails_and_writes_nothing(
    container: Container, account: AccountScope
) -> None:
    async def op(u: UnitOfWork) -> None:
        await AgentRepository(u).insert({"slug": "early", "display_name": "e"}, tags=["x"])
        await u.session.commit()  # the mistake: half an operation made durable

    with pytest.raises(UnitOfWorkMisuse, match="only the unit of work commits"):
        await container.uow.run(op, scope=account)
    assert await _agents(container, account) == []


async def test_the_block_form_cannot_commit(container: Container, account: AccountScope) -> None:
    assert not hasattr(UnitOfWork, "commit")
    async with container.uow(scope=account) as u:
        await AgentRepository(u).insert({"slug": "held", "display_name": "h"}, tags=[])
        async with u.session.begin_nested():  # a savepoint is not a commit: allowed
            await AgentRepository(u).insert({"slug": "nested", "display_name": "n"}, tags=[])
        with pytest.raises(UnitOfWorkMisuse):
            await u.session.commit()
    assert await _agents(container, account) == []


async def test_run_commits_when_the_operation_returns(
    container: Container, account: AccountScope
) -> None:
    async def op(u: UnitOfWork) -> int:
        await AgentRepository(u).insert({"slug": "kept", "display_name": "k"}, tags=[])
        return int((await u.session.execute(select(func.count(Agent.id)))).scalar_one())

    assert await container.uow.run(op, scope=account) == 1
    assert await _agents(container, account) == ["kept"]


def _commit_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "commit"
    ]


def test_nothing_outside_the_unit_of_work_calls_commit() -> None:
    found = {
        str(path.relative_to(SOURCE)): lines
        for path in sorted(SOURCE.rglob("*.py"))
        if path not in (THE_UNIT_OF_WORK, DBAPI_ADAPTER) and (lines := _commit_calls(path))
    }
    assert not found, f"only db/uow.py commits (return from the operation instead): {found}"
    assert _commit_calls(THE_UNIT_OF_WORK), "the scan no longer finds the one real commit"
