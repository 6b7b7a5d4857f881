"""First-start seeding for ``make run``: a demo account with an agent on the offline ``demo``
model and the built-in tools, so a chat works with no key and no network, plus a synthetic
hospital directory that the ``front-desk`` agent searches.

Seeding happens once even when several processes start together: the whole of it runs under one
lock shared by every process on the database (see :func:`seed_lock`). A process that waited finds
everything in place and adds nothing. It reports what it does through ``report`` (the server
prints it), and runs in the background of a started server (:func:`seed_in_background`), so
``/healthz`` answers while the 1 000 practitioners are embedded and ``/readyz`` says
``STARTING`` until they are."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text

from switchboard.bootstrap import Container
from switchboard.config.directories import DirectoryConfig
from switchboard.db.engine import sqlite_path
from switchboard.db.uow import AccountScope, UnitOfWork
from switchboard.directory.rows import validate_rows
from switchboard.directory.synthetic import DEMO_DIRECTORIES, locations, practitioners
from switchboard.errors import Conflict
from switchboard.registry.schemas import AgentCreate
from switchboard.registry.service import account_layer_in, put_layer_in
from switchboard.tenancy.service import TenancyService

log = logging.getLogger("switchboard.operations.seed")

DEMO_ACCOUNT = "demo"
DEMO_AGENT = "assistant"
DIRECTORY_AGENT = "front-desk"
DEMO_PRACTITIONERS = 1000
SEED_SOURCE = "seed (switchboard serve)"
# pg_advisory_lock key: the first 8 bytes of sha256("switchboard:seed"), as a signed bigint.
SEED_LOCK_KEY = int.from_bytes(bytes.fromhex("5c0e4a5bd5a1d1f3"), "big", signed=True)

Report = Callable[[str], None]
WAITING = "another process is seeding the demo account: waiting for it"


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Seeded:
    created: bool  # this call created the demo account (and the key below)
    key: str | None = None
    imported: dict[str, int] = field(default_factory=dict)  # directory → entries this call added


@contextlib.asynccontextmanager
async def seed_lock(container: Container, *, report: Report = _quiet) -> AsyncIterator[None]:
    """Held by one process at a time across every process on the database. PostgreSQL: a
    session advisory lock on a connection of its own (released by the server if the process
    dies). SQLite: an exclusive ``flock`` on a file beside the database (released by the OS);
    the database's own write lock cannot be held across the embedding without stopping every
    other write of the server. An in-memory database has one process: no lock."""
    if not container.settings.is_sqlite:
        async with _pg_advisory_lock(container, report):
            yield
        return
    path = sqlite_path(container.settings.database_url)
    if path is None:
        yield
        return
    handle = await asyncio.to_thread(_flock, path.with_name(path.name + ".seed-lock"), report)
    try:
        yield
    finally:
        await asyncio.to_thread(handle.close)  # closing the file releases the lock


@contextlib.asynccontextmanager
async def _pg_advisory_lock(container: Container, report: Report) -> AsyncIterator[None]:
    connection = await container.engine.connect()
    connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
    key = {"key": SEED_LOCK_KEY}
    try:
        if not (await connection.execute(text("SELECT pg_try_advisory_lock(:key)"), key)).scalar():
            report(WAITING)
            await connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
        yield
        await connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
    except BaseException:
        # Cancelled or failed while holding (or waiting for) the lock: drop the connection, so
        # the server releases the lock instead of a pooled connection keeping it.
        await connection.invalidate()
        raise
    finally:
        await connection.close()


def _flock(path: Path, report: Report) -> IO[bytes]:
    import fcntl

    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    handle = os.fdopen(descriptor, "r+b")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report(WAITING)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # until the other process is done
    except BaseException:
        handle.close()
        raise
    return handle


async def seed_demo(container: Container, *, report: Report = _quiet) -> Seeded:
    """Create the demo account, its agents, directory and an API key once; later calls only
    add what is missing (the directory, on a database seeded by an older version). Runs under
    :func:`seed_lock`, so concurrent processes seed once between them."""
    async with seed_lock(container, report=report):
        return await _seed_demo(container, report)


async def _seed_demo(container: Container, report: Report) -> Seeded:

    async def op(u: UnitOfWork) -> tuple[AccountScope, bool]:
        account, created = await TenancyService.ensure_account_in(
            u, slug=DEMO_ACCOUNT, name="Demo Clinic"
        )
        scope = AccountScope(id=account.id, slug=account.slug)
        if created:
            await container.agents.create_in(
                u.bound_to(scope),
                AgentCreate(
                    slug=DEMO_AGENT,
                    display_name="Demo assistant",
                    description="Runs on the offline demo model; calls its tools in parallel.",
                    model="demo",
                    tools=["calculate", "current_time", "remember", "recall"],
                    tags=["demo"],
                ),
                actor="operator",
            )
        return scope, created

    scope, created = await container.uow.run(op)
    if created:
        report(f"seeding the demo account '{DEMO_ACCOUNT}' (first start)")
    imported = await _seed_directories(container, scope, report)
    if not created:
        return Seeded(created=False, imported=imported)
    key = await container.tenancy.create_key(scope, name="demo (made by make run)")
    return Seeded(created=True, key=key.secret, imported=imported)


async def _seed_directories(
    container: Container, scope: AccountScope, report: Report
) -> dict[str, int]:
    async def add_schemas(u: UnitOfWork) -> None:
        current = await account_layer_in(u)
        source, data = current if current is not None else (SEED_SOURCE, {})
        if "directories" in data:
            return
        data["directories"] = DEMO_DIRECTORIES
        await put_layer_in(u, source=source, data=data)

    await container.uow.run(add_schemas, scope=scope)
    with contextlib.suppress(Conflict):
        await container.agents.create(
            scope,
            AgentCreate(
                slug=DIRECTORY_AGENT,
                display_name="Front desk",
                description="Finds practitioners and locations in the hospital directory.",
                model="demo",
                tools=["search_directory", "get_directory_entry"],
                tags=["demo", "directory"],
            ),
            actor="operator",
        )
    schemas = await container.directories.schemas(scope)
    generated: dict[str, Callable[[], Iterator[dict[str, Any]]]] = {
        "practitioners": lambda: practitioners(DEMO_PRACTITIONERS),
        "locations": locations,
    }
    imported: dict[str, int] = {}
    for name, records in generated.items():
        config: DirectoryConfig | None = schemas.get(name)
        if config is None or await container.directories.count(scope, name):
            continue
        rows = validate_rows(config, name, enumerate(records(), start=1))
        embedding = config.semantic and container.directories.embedder is not None
        report(
            f"seeding the directory '{name}': {len(rows)} entries"
            + (" (embedding them with the local model, loaded first)" if embedding else "")
        )
        result = await container.directories.import_entries(
            scope, name, config, rows, progress=_stage_reporter(name, report)
        )
        log.info("seeded directory %s: %d entries", name, result.total)
        imported[name] = result.total
    return imported


def _stage_reporter(directory: str, report: Report) -> Callable[[str, int, int], None]:
    def progress(stage: str, done: int, total: int) -> None:
        if stage == "embed":
            report(f"  {directory}: embedded {done} of {total}")

    return progress


async def seed_in_background(
    app_state: Any,
    container: Container,
    *,
    report: Report,
    on_done: Callable[[Seeded], None] | None = None,
) -> None:
    """Seed while the server already answers: ``app_state.starting`` says what is going on
    (``/readyz`` answers 503 STARTING meanwhile) and is cleared when seeding ends."""
    app_state.starting = "checking the demo account (seeding it on the first start)"
    try:
        seeded = await seed_demo(container, report=report)
    except Exception:
        log.exception("seeding the demo account failed")
        report("seeding the demo account failed: see the log; the server keeps running")
        app_state.starting = None
        return
    app_state.starting = None
    if on_done is not None:
        on_done(seeded)
