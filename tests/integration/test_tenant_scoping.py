"""Rules 4 and 12: tenant scoping is applied by the unit of work, not remembered per query.

For every tenant-owned table (computed from the mappers), a unit of work bound to account A
selects, updates and deletes with no account filter written, and never sees or touches account
B's row; writing a row of B through it fails. Without an account, and without the explicit
``CrossAccount`` escape, a tenant-owned table cannot be queried at all."""

from __future__ import annotations

import ast
import secrets
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, inspect, select, update
from sqlalchemy.engine import CursorResult

import switchboard
from switchboard.bootstrap import Container
from switchboard.db.base import Base, utcnow
from switchboard.db.scoping import CORE_TABLE_EXCEPTIONS, tenant_owned, tenant_owned_tables
from switchboard.db.uow import AccountScope, CrossAccount, UnitOfWork, UnitOfWorkMisuse
from switchboard.directory.repository import DirectoryRepository
from switchboard.models import Agent, Budget, ConfigLayer, Conversation, DirectoryEntry, Run
from tests.conftest import unique

TENANT_OWNED = [
    "agent_tags",
    "agents",
    "api_keys",
    "budgets",
    "config_layers",
    "conversations",
    "directory_entries",
    "llm_requests",
    "memories",
    "messages",
    "run_events",
    "runs",
    "usage_daily",
]
ANYONE = CrossAccount("test: rows of several accounts, written and checked")


def test_the_tenant_owned_tables_are_every_table_with_an_account_id() -> None:
    """A new table with ``account_id`` is scoped the moment it is mapped: it shows up here."""
    assert tenant_owned_tables() == TENANT_OWNED
    with_account = sorted(
        name for name, table in Base.metadata.tables.items() if "account_id" in table.c
    )
    assert with_account == TENANT_OWNED


def _entity(table: str) -> type[Any]:
    return next(owned.entity for owned in tenant_owned() if owned.table == table)


def _row(table: str, scope: AccountScope, parents: dict[str, uuid.UUID], n: int) -> dict[str, Any]:
    """A minimal valid row of ``table`` for the account ``scope``."""
    tag = f"{n}-{uuid.uuid4().hex[:8]}"
    rows: dict[str, dict[str, Any]] = {
        "agent_tags": {"agent_id": parents.get("agent"), "tag": f"t{tag}"},
        "agents": {"id": uuid.uuid4(), "slug": f"s{tag}", "display_name": "d"},
        "api_keys": {"id": uuid.uuid4(), "prefix": "p", "key_hash": uuid.uuid4().hex},
        "budgets": {
            "id": uuid.uuid4(),
            "agent_slug": f"a{tag}",
            "period": "day",
            "limit_nano_usd": 1,
        },
        "config_layers": {"id": uuid.uuid4(), "key": f"test:{tag}", "source": "t", "data": {}},
        "conversations": {"id": uuid.uuid4(), "agent_id": uuid.uuid4(), "agent_slug": "a"},
        "directory_entries": {
            "directory": "d",
            "external_id": f"e{tag}",
            "data": {},
            "search_text": "x",
            "facet_text": "y",
        },
        "llm_requests": {
            "id": uuid.uuid4(),
            "account_slug": scope.slug,
            "run_id": uuid.uuid4(),
            "kind": "chat",
            "provider": "p",
            "model": "m",
            "deadline_at": utcnow(),
        },
        "memories": {"agent_slug": "a", "key": f"k{tag}", "value": "v"},
        "usage_daily": {
            "day": utcnow().date(),
            "agent_slug": f"a{tag}",
            "provider": "p",
            "model": "m",
            "status": "complete",
            "error_class": "",
            "account_slug": scope.slug,
        },
        "runs": {"id": uuid.uuid4(), **_run_values(None, None)},
        "run_events": {"run_id": parents.get("run"), "seq": n, "type": "t", "data": {}},
        "messages": {
            "id": uuid.uuid4(),
            "conversation_id": parents.get("conversation"),
            "seq": n,
            "role": "user",
            "data": {},
        },
    }
    return {**rows[table], "account_id": scope.id}


def _without_account(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "account_id"}


async def _accounts(container: Container) -> tuple[AccountScope, AccountScope]:
    a = await container.tenancy.create_account(slug=unique("a"), name="A")
    b = await container.tenancy.create_account(slug=unique("b"), name="B")
    return AccountScope(a.id, a.slug), AccountScope(b.id, b.slug)


async def _parents(container: Container, scope: AccountScope) -> dict[str, uuid.UUID]:
    """An agent and a conversation of ``scope``, for the tables that point at them."""
    agent, conversation, run = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def op(u: UnitOfWork) -> None:
        u.session.add(Agent(id=agent, slug=unique("p"), display_name="parent"))
        u.session.add(Conversation(id=conversation, agent_id=agent, agent_slug="p"))
        u.session.add(Run(**_run_values(agent, conversation), id=run))

    await container.uow.run(op, scope=scope)
    return {"agent": agent, "conversation": conversation, "run": run}


def _run_values(agent: uuid.UUID | None, conversation: uuid.UUID | None) -> dict[str, Any]:
    return {
        "agent_id": agent or uuid.uuid4(),
        "agent_slug": "a",
        "conversation_id": conversation or uuid.uuid4(),
        "queue_seq": 1_000 + secrets.randbelow(10**9),
        "status": "succeeded",
        "multitask_strategy": "enqueue",
        "on_disconnect": "continue",
        "request": {},
        "fingerprint": "f",
    }


def _pk_of(entity: type[Any]) -> list[Any]:
    """The primary key as mapped attributes (``inspect(entity).primary_key`` would give the
    Core columns, which the criteria do not reach)."""
    mapper = inspect(entity)
    return [mapper.get_property_by_column(c).class_attribute for c in mapper.primary_key]


async def _keys(container: Container, entity: type[Any], *where: Any) -> set[tuple[Any, ...]]:
    """Primary keys of ``entity``'s rows matching ``where``, read across accounts."""

    async def op(u: UnitOfWork) -> set[tuple[Any, ...]]:
        rows = await u.session.execute(select(*_pk_of(entity)).where(*where))
        return {tuple(row) for row in rows}

    return await container.uow.run(op, scope=ANYONE, write=False)


async def _rowcount(
    container: Container, scope: AccountScope, statement: Any
) -> int:  # an UPDATE or DELETE run (and committed) through ``scope``'s unit of work
    async def op(u: UnitOfWork) -> int:
        result = await u.session.execute(statement)
        assert isinstance(result, CursorResult)
        return int(result.rowcount)

    return await container.uow.run(op, scope=scope)


@pytest.mark.parametrize("table", TENANT_OWNED)
async def test_a_scoped_unit_of_work_sees_and_touches_only_its_account(
    container: Container, table: str
) -> None:
    entity = _entity(table)
    a, b = await _accounts(container)
    parents = {a: await _parents(container, a), b: await _parents(container, b)}

    async def seed(u: UnitOfWork) -> None:
        await u.session.execute(
            insert(entity), [_row(table, a, parents[a], 1), _row(table, b, parents[b], 1)]
        )

    await container.uow.run(seed, scope=ANYONE)
    column = entity.account_id
    mine = await _keys(container, entity, column == a.id)
    theirs = await _keys(container, entity, column == b.id)
    shared = await _keys(container, entity, column.is_(None))
    assert mine
    assert theirs
    assert not mine & theirs

    # SELECT with no account filter written: A's rows (and shared rows, for reading), never B's.
    async def read(u: UnitOfWork) -> tuple[set[tuple[Any, ...]], int, set[uuid.UUID | None]]:
        keys = {tuple(r) for r in await u.session.execute(select(*_pk_of(entity)))}
        count = (await u.session.execute(select(func.count()).select_from(entity))).scalar_one()
        owners = {row.account_id for row in (await u.session.execute(select(entity))).scalars()}
        return keys, int(count), owners

    keys, count, owners = await container.uow.run(read, scope=a, write=False)
    assert keys == mine | shared
    assert count == len(mine | shared)
    assert owners <= {a.id, None}

    # Writing B's rows through A fails, whichever way the row is written; nothing is written.
    row_of_b = _row(table, b, parents[b], 2)

    async def core_insert(u: UnitOfWork) -> None:
        await u.session.execute(insert(entity).values(**row_of_b))

    async def executemany_insert(u: UnitOfWork) -> None:
        await u.session.execute(insert(entity), [row_of_b])

    async def orm_add(u: UnitOfWork) -> None:
        u.session.add(entity(**row_of_b))
        await u.session.flush()

    async def move_to_b(u: UnitOfWork) -> None:
        await u.session.execute(update(entity).values(account_id=b.id))

    writes: list[Callable[[UnitOfWork], Awaitable[None]]] = [
        core_insert,
        executemany_insert,
        orm_add,
        move_to_b,
    ]
    for write in writes:
        with pytest.raises(UnitOfWorkMisuse):
            await container.uow.run(write, scope=a)
    assert await _keys(container, entity, column == b.id) == theirs
    assert await _keys(container, entity, column == a.id) == mine

    # A row that names no account is stamped with the unit of work's.
    stamped = [_without_account(_row(table, a, parents[a], n)) for n in (3, 4, 5)]

    async def add_unstamped(u: UnitOfWork) -> None:
        await u.session.execute(insert(entity).values(**stamped[0]))
        await u.session.execute(insert(entity), [stamped[1]])
        u.session.add(entity(**stamped[2]))

    await container.uow.run(add_unstamped, scope=a)
    before, mine = mine, await _keys(container, entity, column == a.id)
    assert before < mine
    assert len(mine) == len(before) + 3
    assert await _keys(container, entity, column == b.id) == theirs

    # UPDATE and DELETE with no account filter written touch A's rows only (not shared ones).
    assert await _rowcount(container, a, update(entity).values(account_id=a.id)) == len(mine)
    assert await _rowcount(container, a, delete(entity)) == len(mine)
    assert not await _keys(container, entity, column == a.id)
    assert await _keys(container, entity, column == b.id) == theirs
    assert await _keys(container, entity, column.is_(None)) == shared


@pytest.mark.parametrize("table", TENANT_OWNED)
async def test_without_an_account_or_the_escape_a_tenant_table_is_refused(
    container: Container, table: str
) -> None:
    entity = _entity(table)
    a, _ = await _accounts(container)

    async def read(u: UnitOfWork) -> None:
        await u.session.execute(select(entity).limit(1))

    async def count(u: UnitOfWork) -> None:
        await u.session.execute(select(func.count()).select_from(entity.__table__))

    async def write(u: UnitOfWork) -> None:
        await u.session.execute(insert(entity).values(**_row(table, a, {}, 1)))

    for operation in (read, count):
        with pytest.raises(UnitOfWorkMisuse, match="belongs to an account"):
            await container.uow.run(operation, write=False)
    if table not in ("agent_tags", "messages"):  # their rows need a parent row first
        with pytest.raises(UnitOfWorkMisuse, match="belongs to an account"):
            await container.uow.run(write)
    await container.uow.run(read, scope=CrossAccount("test: the escape is explicit"))


async def test_shared_rows_are_read_but_written_only_across_accounts(
    container: Container,
) -> None:
    """``config_layers`` with ``account_id`` NULL (the global layer) are every account's to read,
    none's to write."""
    a, _ = await _accounts(container)
    key = unique("test-shared")

    async def write_shared(u: UnitOfWork) -> None:
        await u.session.execute(
            insert(ConfigLayer).values(
                id=uuid.uuid4(), key=key, account_id=None, source="t", data={}
            )
        )

    with pytest.raises(UnitOfWorkMisuse, match="shared rows"):
        await container.uow.run(write_shared, scope=a)
    await container.uow.run(write_shared, scope=ANYONE)

    async def read(u: UnitOfWork) -> list[str]:
        result = await u.session.execute(select(ConfigLayer.key).where(ConfigLayer.key == key))
        return list(result.scalars())

    assert await container.uow.run(read, scope=a, write=False) == [key]
    assert await _rowcount(container, a, delete(ConfigLayer).where(ConfigLayer.key == key)) == 0
    assert await container.uow.run(read, scope=a, write=False) == [key]
    await _rowcount(container, a, delete(ConfigLayer).where(ConfigLayer.key == "none"))

    async def drop(u: UnitOfWork) -> None:
        await u.session.execute(delete(ConfigLayer).where(ConfigLayer.key == key))

    await container.uow.run(drop, scope=ANYONE)


async def test_a_flush_writes_only_rows_of_a_bound_account(container: Container) -> None:
    """ORM flushes run on the connection, out of ``do_orm_execute``'s sight: a loaded shared
    row changed or deleted, or another account's row merged in and changed or deleted, is
    refused when flushed; nothing is written."""
    a, b = await _accounts(container)
    key, theirs = unique("test-shared"), uuid.uuid4()

    async def seed(u: UnitOfWork) -> None:
        u.session.add(ConfigLayer(id=uuid.uuid4(), key=key, account_id=None, source="t", data={}))
        u.session.add(
            Budget(id=theirs, account_id=b.id, agent_slug="", period="day", limit_nano_usd=1)
        )

    await container.uow.run(seed, scope=ANYONE)

    async def change_shared(u: UnitOfWork) -> None:
        layer = (
            await u.session.execute(select(ConfigLayer).where(ConfigLayer.key == key))
        ).scalar_one()
        layer.source = "changed by a"

    async def delete_shared(u: UnitOfWork) -> None:
        layer = (
            await u.session.execute(select(ConfigLayer).where(ConfigLayer.key == key))
        ).scalar_one()
        await u.session.delete(layer)

    async def load(u: UnitOfWork) -> Budget:
        return (await u.session.execute(select(Budget).where(Budget.id == theirs))).scalar_one()

    async def change_theirs(u: UnitOfWork) -> None:
        budget = await container.uow.run(load, scope=ANYONE, write=False)  # detached
        u.session.add(budget)
        budget.limit_nano_usd = 99

    async def delete_theirs(u: UnitOfWork) -> None:
        budget = await container.uow.run(load, scope=ANYONE, write=False)
        u.session.add(budget)
        await u.session.delete(budget)

    for operation in (change_shared, delete_shared, change_theirs, delete_theirs):
        with pytest.raises(UnitOfWorkMisuse):
            await container.uow.run(operation, scope=a)

    async def state(u: UnitOfWork) -> tuple[str, int]:
        layer = await u.session.execute(select(ConfigLayer.source).where(ConfigLayer.key == key))
        limit = await u.session.execute(select(Budget.limit_nano_usd).where(Budget.id == theirs))
        return layer.scalar_one(), limit.scalar_one()

    assert await container.uow.run(state, scope=ANYONE, write=False) == ("t", 1)


async def test_an_upsert_never_updates_another_accounts_row(container: Container) -> None:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` on a unique key without ``account_id``: the
    conflicting row of another account is left as it is."""
    from switchboard.db.upsert import dialect_insert

    a, b = await _accounts(container)
    key = unique("test-layer")

    async def put(u: UnitOfWork, source: str) -> None:
        statement = dialect_insert(u, ConfigLayer).values(
            id=uuid.uuid4(), key=key, source=source, data={}, updated_at=utcnow()
        )
        await u.session.execute(
            statement.on_conflict_do_update(index_elements=["key"], set_={"source": source})
        )

    await container.uow.run(lambda u: put(u, "b's"), scope=b)
    await container.uow.run(lambda u: put(u, "a's"), scope=a)

    async def rows(u: UnitOfWork) -> list[tuple[Any, str]]:
        result = await u.session.execute(
            select(ConfigLayer.account_id, ConfigLayer.source).where(ConfigLayer.key == key)
        )
        return [tuple(row) for row in result]  # type: ignore[misc]

    assert await container.uow.run(rows, scope=ANYONE, write=False) == [(b.id, "b's")]


async def test_every_batch_of_a_multi_row_insert_is_checked(container: Container) -> None:
    a, b = await _accounts(container)

    async def two_batches(u: UnitOfWork) -> None:
        statement = (
            insert(Budget)
            .values(
                [
                    {
                        "id": uuid.uuid4(),
                        "account_id": a.id,
                        "agent_slug": "x",
                        "period": "day",
                        "limit_nano_usd": 1,
                    }
                ]
            )
            .values(
                [
                    {
                        "id": uuid.uuid4(),
                        "account_id": b.id,
                        "agent_slug": "y",
                        "period": "day",
                        "limit_nano_usd": 1,
                    }
                ]
            )
        )
        await u.session.execute(statement)

    with pytest.raises(UnitOfWorkMisuse):
        await container.uow.run(two_batches, scope=a)
    assert not await _keys(container, Budget, Budget.account_id.in_([a.id, b.id]))


async def test_a_bulk_update_by_primary_key_is_refused_in_a_scoped_unit_of_work(
    container: Container,
) -> None:
    """``session.execute(update(Entity), [{pk…, …}])`` filters on the key alone (SQLAlchemy
    does not apply loader criteria to it), so a scoped unit of work refuses it."""
    a, b = await _accounts(container)
    theirs = uuid.uuid4()

    async def seed(u: UnitOfWork) -> None:
        u.session.add(Budget(id=theirs, agent_slug="", period="day", limit_nano_usd=1))

    await container.uow.run(seed, scope=b)

    async def bulk(u: UnitOfWork) -> None:
        await u.session.execute(update(Budget), [{"id": theirs, "limit_nano_usd": 5}])

    with pytest.raises(UnitOfWorkMisuse, match="bulk UPDATE by primary key"):
        await container.uow.run(bulk, scope=a)

    async def limit(u: UnitOfWork) -> int:
        return (await u.session.execute(select(Budget.limit_nano_usd))).scalar_one()

    assert await container.uow.run(limit, scope=b, write=False) == 1


async def test_a_view_bound_to_another_account_runs_under_that_account(
    container: Container,
) -> None:
    """``bound_to`` (``apply`` across accounts): each view's statements and added rows are its
    account's; the original's stay the original's; one commit writes both."""
    a, b = await _accounts(container)

    async def op(u: UnitOfWork) -> tuple[list[str], list[str]]:
        view = u.bound_to(b)
        u.session.add(Agent(slug="of-a", display_name="a"))
        view.session.add(Agent(slug="of-b", display_name="b"))
        seen_by_b = list((await view.session.execute(select(Agent.slug))).scalars())
        seen_by_a = list((await u.session.execute(select(Agent.slug))).scalars())
        return sorted(seen_by_a), sorted(seen_by_b)

    seen_by_a, seen_by_b = await container.uow.run(op, scope=a)
    assert (seen_by_a, seen_by_b) == (["of-a"], ["of-b"])
    assert await _keys(container, Agent, Agent.account_id == a.id, Agent.slug == "of-a")
    assert await _keys(container, Agent, Agent.account_id == b.id, Agent.slug == "of-b")


async def test_the_directory_repository_filters_its_core_statements_itself(
    container: Container,
) -> None:
    """The listed exception: the directory's search path is Core SQL (for SQLite's planner),
    out of the criteria's reach; its own account filter keeps B's entries out."""
    a, b = await _accounts(container)

    async def seed(u: UnitOfWork) -> None:
        for scope in (a, b):
            u.session.add(
                DirectoryEntry(
                    account_id=scope.id,
                    directory="d",
                    external_id="same",
                    data={"of": scope.slug},
                    search_text="x",
                    facet_text="y",
                )
            )

    await container.uow.run(seed, scope=ANYONE)
    [b_id] = await _keys(container, DirectoryEntry, DirectoryEntry.account_id == b.id)

    async def look(u: UnitOfWork) -> tuple[int, dict[int, Any], bool, Any]:
        repository = DirectoryRepository(u, "d")
        entry = await repository.get("same")
        return (
            await repository.count(),
            await repository.by_ids([b_id[0]]),
            await repository.delete("nothing"),
            entry.data if entry is not None else None,
        )

    count, by_id, deleted, data = await container.uow.run(look, scope=a)
    assert (count, by_id, deleted, data) == (1, {}, False, {"of": a.slug})
    assert set(CORE_TABLE_EXCEPTIONS) == {"switchboard.directory.repository"}


def test_only_the_listed_modules_reach_a_tenant_table_through_its_core_table() -> None:
    """``<TenantOwned>.__table__`` (a Core ``Table``) escapes the criteria: only the modules in
    ``CORE_TABLE_EXCEPTIONS`` may use it, each with its own explicit filter."""
    source = Path(switchboard.__file__).parent
    classes = {owned.entity.__name__ for owned in tenant_owned()}
    found: set[str] = set()
    for path in sorted(source.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "__table__"
                and isinstance(node.value, ast.Name)
                and node.value.id in classes
            ):
                module = ".".join(("switchboard", *path.relative_to(source).with_suffix("").parts))
                found.add(module)
    assert found <= set(CORE_TABLE_EXCEPTIONS), found - set(CORE_TABLE_EXCEPTIONS)
