"""Tenant scoping, applied by the unit of work to every statement it runs (rules 4 and 12).

A *tenant-owned* table is the table of any mapped class with an ``account_id`` column
(:func:`tenant_owned_tables`, computed from the mappers). Each unit of work — and each view
``bound_to`` another account — holds an *access*, which it puts in ``session.info`` whenever it
hands out its session, so the statements it runs are judged by it:

``AccountScope``
    Every ORM ``SELECT``, ``UPDATE`` and ``DELETE`` gets ``account_id = :scope`` on each
    tenant-owned entity wherever it appears (joins, subqueries, aliases, relationship loads) —
    ``with_loader_criteria`` in a ``do_orm_execute`` event. An ``INSERT`` (statement values or
    executemany parameters) and a new ORM object naming another account raise; naming none,
    they are stamped with the scope. An ``UPDATE`` may not move a row to another account.
``CrossAccount("reason")``
    The explicit escape for the few operations that span accounts (authentication by key hash,
    the ledger sweeper, operator reports, ``apply``): no criteria. Grep ``CrossAccount(``.
``None``
    A unit of work without an account: any statement on a tenant-owned table raises. Accounts,
    process leases and ``SELECT 1`` need no account.

A tenant-owned table whose ``account_id`` is nullable holds *shared* rows (``NULL``: the global
config layer): a scoped unit of work reads them, but updates, deletes and inserts only its own.

Not covered, by design: statements written against a Core ``Table`` instead of the mapped class,
and ``text()``. The one module that does so is listed in :data:`CORE_TABLE_EXCEPTIONS` with the
explicit filter it keeps (a test fails when another one appears).
"""

from __future__ import annotations

import copy
import functools
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import and_, event, inspect, or_
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, with_loader_criteria
from sqlalchemy.orm.interfaces import ORMOption
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter, ClauseElement
from sqlalchemy.sql.expression import Executable, TableClause

from switchboard.db.base import Base
from switchboard.errors import FatalError

ACCESS_KEY: Final = "switchboard.access"  # session.info: the access statements run under
BOUND_KEY: Final = "switchboard.bound"  # session.info: ids of the accounts bound on the session
ACCOUNT_COLUMN: Final = "account_id"

# Modules that query a tenant-owned table through its Core ``Table`` (which the criteria do not
# reach), with the explicit filter each keeps. tests/integration/test_tenant_scoping.py proves
# that filter and fails when a module outside this list touches a tenant-owned ``__table__``.
CORE_TABLE_EXCEPTIONS: Final[Mapping[str, str]] = {
    "switchboard.directory.repository": (
        "directory_entries: search, count, by-id reads and deletes filter on "
        "DirectoryRepository._scoped()/_rechecked() (account and directory), written as Core so "
        "SQLite's planner can be steered to the full-text index (the unary '+' hint)"
    ),
}


class UnitOfWorkMisuse(FatalError):
    default_code = "UNIT_OF_WORK_MISUSE"


@dataclass(frozen=True, slots=True)
class AccountScope:
    """The tenant a unit of work is bound to: its statements see and write only its rows."""

    id: uuid.UUID
    slug: str


@dataclass(frozen=True, slots=True)
class CrossAccount:
    """The explicit escape from tenant scoping, with the reason the operation spans accounts."""

    reason: str

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("CrossAccount needs the reason the operation spans accounts")


Access = AccountScope | CrossAccount | None


@dataclass(frozen=True, slots=True)
class TenantOwned:
    entity: type[Base]
    table: str
    shared_rows: bool  # account_id is nullable: NULL rows are shared by every account


_Found = tuple[tuple[TenantOwned, ...], dict[str, TenantOwned], dict[type[Any], TenantOwned]]
_cache: tuple[int, _Found] = (-1, ((), {}, {}))


def tenant_owned() -> tuple[TenantOwned, ...]:
    """Every mapped class with an ``account_id`` column, by table name (computed from the
    mappers, so a new model is scoped the moment it is imported)."""
    return _tenant_owned()[0]


def tenant_owned_tables() -> list[str]:
    return [owned.table for owned in tenant_owned()]


def _tenant_owned() -> _Found:
    global _cache
    mappers = Base.registry.mappers
    if _cache[0] != len(mappers):
        found: list[TenantOwned] = []
        for mapper in mappers:
            column = mapper.columns.get(ACCOUNT_COLUMN)
            if column is not None:
                table = mapper.local_table
                assert isinstance(table, TableClause)
                found.append(TenantOwned(mapper.class_, table.name, bool(column.nullable)))
        owned = tuple(sorted(found, key=lambda item: item.table))
        by_table = {item.table: item for item in owned}
        _cache = (len(mappers), (owned, by_table, {item.entity: item for item in owned}))
    return _cache[1]


# --- the session --------------------------------------------------------------------------


class ScopedSession(Session):
    """The session class behind every unit of work; the events below are registered on it."""


def activate(session: Session, access: Access) -> None:
    """Run the session's next statements under ``access`` (called by the unit of work or view
    that hands out the session)."""
    session.info[ACCESS_KEY] = access


def bind(session: Session, access: Access) -> None:
    """Record that a unit of work or view with ``access`` uses ``session``; its account's rows
    may then be flushed by it."""
    if isinstance(access, AccountScope):
        session.info.setdefault(BOUND_KEY, set()).add(access.id)
    activate(session, access)


def _access(session: Session) -> Access:
    access = session.info.get(ACCESS_KEY)
    assert access is None or isinstance(access, AccountScope | CrossAccount)
    return access


def _unscoped(table: str) -> UnitOfWorkMisuse:
    return UnitOfWorkMisuse(
        f"'{table}' belongs to an account: open the unit of work with scope=<the account>, or "
        "with scope=CrossAccount('<why>') for an operation that spans accounts"
    )


def _other_account(table: str, found: object, scope: AccountScope) -> UnitOfWorkMisuse:
    return UnitOfWorkMisuse(
        f"a row of '{table}' for account {found} written through a unit of work bound to "
        f"account '{scope.slug}'"
    )


@functools.lru_cache(maxsize=4096)
def _criteria(
    scope_id: uuid.UUID, *, shared_visible: bool, generation: int
) -> Mapping[str, ORMOption]:
    """``account_id = scope_id`` (or NULL, for shared rows being read) per tenant-owned table;
    built once per account (``generation`` changes when mappers are added)."""
    options: dict[str, ORMOption] = {}
    for owned in tenant_owned():
        column = owned.entity.account_id  # type: ignore[attr-defined]
        condition = column == scope_id
        if owned.shared_rows and shared_visible:
            condition = or_(condition, column.is_(None))
        options[owned.table] = with_loader_criteria(owned.entity, condition, include_aliases=True)
    return options


def _tables(statement: Executable) -> Iterable[str]:
    assert isinstance(statement, ClauseElement)
    for element in visitors.iterate(statement):
        if isinstance(element, TableClause):
            yield element.name


_MISSING: Final = object()


def _value(value: object, table: str) -> object:
    if isinstance(value, BindParameter):
        value = value.value
    if isinstance(value, ClauseElement):
        raise UnitOfWorkMisuse(f"'{table}.{ACCOUNT_COLUMN}' must be written as a value")
    return value


def _named(values: Mapping[Any, Any] | None, table: str) -> object:
    """The account a statement's ``values()`` (or ``SET``) names, or ``_MISSING``."""
    for key, value in (values or {}).items():
        name = key if isinstance(key, str) else getattr(key, "key", None)
        if name == ACCOUNT_COLUMN:
            return _value(value, table)
    return _MISSING


def _check(found: object, owned: TenantOwned, scope: AccountScope) -> None:
    if found is None:
        if owned.shared_rows:
            raise UnitOfWorkMisuse(
                f"shared rows of '{owned.table}' ({ACCOUNT_COLUMN} NULL) are written only "
                "through a CrossAccount unit of work"
            )
        raise _other_account(owned.table, found, scope)
    if found != scope.id:
        raise _other_account(owned.table, found, scope)


def _check_insert(state: ORMExecuteState, owned: TenantOwned, scope: AccountScope) -> None:
    """Check an INSERT's account (statement values, multi-values and executemany parameters);
    stamp the scope where none is named."""
    statement: Any = state.statement
    if statement.select is not None:
        raise UnitOfWorkMisuse(f"INSERT … SELECT into '{owned.table}' needs CrossAccount")
    named = _named(statement._values, owned.table)
    if named is not _MISSING:
        _check(named, owned, scope)
    for batch in statement._multi_values:  # one batch per .values([...]) call
        for row in batch:
            found = _named(row, owned.table) if isinstance(row, Mapping) else _MISSING
            if found is _MISSING:
                raise UnitOfWorkMisuse(
                    f"each row inserted into '{owned.table}' must name its account (as a mapping)"
                )
            _check(found, owned, scope)
    post = statement._post_values_clause
    if post is not None and hasattr(post, "update_values_to_set"):  # ON CONFLICT DO UPDATE
        updated = _named(post.update_values_to_set, owned.table)
        if updated is not _MISSING:
            _check(updated, owned, scope)
        # The conflicting row may be another account's (a unique key without account_id): the
        # update then touches nothing instead of overwriting it.
        mine = owned.entity.__table__.c[ACCOUNT_COLUMN] == scope.id
        guarded = copy.copy(post)
        where = post.update_whereclause
        guarded.update_whereclause = mine if where is None else and_(where, mine)
        statement = statement._generate()
        statement._post_values_clause = guarded
        state.statement = statement
    parameters = state.parameters
    rows: list[Mapping[str, Any]] = (
        list(parameters)
        if isinstance(parameters, list)
        else [parameters]
        if isinstance(parameters, Mapping) and parameters
        else []
    )
    stamp = named is _MISSING and not statement._multi_values  # nothing else names one
    stamped: list[Mapping[str, Any]] = []
    for row in rows:
        if ACCOUNT_COLUMN in row:
            _check(row[ACCOUNT_COLUMN], owned, scope)
        elif stamp:
            row = {**row, ACCOUNT_COLUMN: scope.id}
        stamped.append(row)
    if not rows and stamp:
        state.statement = statement.values({ACCOUNT_COLUMN: scope.id})
    elif any(new is not old for new, old in zip(stamped, rows, strict=True)):
        state.parameters = stamped if isinstance(parameters, list) else stamped[0]


def _check_update(state: ORMExecuteState, owned: TenantOwned, scope: AccountScope) -> None:
    statement: Any = state.statement
    named = _named(statement._values, owned.table)
    if named is not _MISSING:
        _check(named, owned, scope)
    if state.is_orm_statement and isinstance(state.parameters, list):
        # ORM bulk UPDATE by primary key: its WHERE is the key alone, out of the criteria' reach.
        raise UnitOfWorkMisuse(
            f"bulk UPDATE by primary key of '{owned.table}' in a scoped unit of work: write "
            "one UPDATE … WHERE instead"
        )


def _target(state: ORMExecuteState) -> TenantOwned | None:
    table = getattr(state.statement, "table", None)
    if not isinstance(table, TableClause):
        return None
    return _tenant_owned()[1].get(table.name)


@event.listens_for(ScopedSession, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    access = _access(state.session)
    if isinstance(access, CrossAccount):
        return
    if state.is_column_load:
        return  # a loaded object's own columns, by primary key
    if access is None:
        owned = _tenant_owned()[1]
        for name in _tables(state.statement):
            if name in owned:
                raise _unscoped(name)
        return
    if state.is_insert:
        target = _target(state)
        if target is not None:
            _check_insert(state, target, access)
        return
    if state.is_update:
        target = _target(state)
        if target is not None:
            _check_update(state, target, access)
    if state.is_orm_statement and (state.is_select or state.is_update or state.is_delete):
        _tenant_owned()  # up to date with the mappers, so the generation below is current
        criteria = _criteria(access.id, shared_visible=state.is_select, generation=_cache[0])
        # Only the tenant-owned tables the statement names (relationship loads included): the
        # criteria are ready-made per account, but each one costs on every execution.
        options = [criteria[name] for name in set(_tables(state.statement)) if name in criteria]
        if options:
            state.statement = state.statement.options(*options)


@event.listens_for(ScopedSession, "transient_to_pending")
def _stamp_added(session: Session, instance: object) -> None:
    """``session.add(row)``: stamp the scope of the unit of work (or view) that added it."""
    owned = _tenant_owned()[2].get(type(instance))
    access = _access(session)
    if owned is None or not isinstance(access, AccountScope):
        return  # checked when flushed
    found = getattr(instance, ACCOUNT_COLUMN)
    if found is None:
        setattr(instance, ACCOUNT_COLUMN, access.id)
    else:
        _check(found, owned, access)


@event.listens_for(ScopedSession, "before_flush")
def _check_flushed(session: Session, flush_context: UOWTransaction, instances: object) -> None:
    """Rows a flush inserts, updates or deletes (which ``do_orm_execute`` never sees: the
    unit-of-work flush executes on the connection) belong to an account bound on this session
    (the unit of work's or a view's) — before and after the change. Shared rows (``account_id``
    NULL) are flushed only cross-account."""
    access = _access(session)
    if isinstance(access, CrossAccount):
        return
    by_class = _tenant_owned()[2]
    bound: set[uuid.UUID] = session.info.get(BOUND_KEY, set())
    changed = [row for row in session.dirty if type(row) in by_class and session.is_modified(row)]
    for row in (*session.new, *changed, *session.deleted):
        owned = by_class.get(type(row))
        if owned is None:
            continue
        history = inspect(row).attrs[ACCOUNT_COLUMN].history
        accounts = {getattr(row, ACCOUNT_COLUMN), *(history.deleted or ())}
        for found in accounts:
            if found is not None and found in bound:
                continue
            if access is None:
                raise _unscoped(owned.table)
            _check(found, owned, access)
