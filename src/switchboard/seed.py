"""First-start seeding for ``make run``: a demo account with an agent on the offline ``demo``
model and the built-in tools, so a chat works with no key and no network, plus a synthetic
hospital directory that the ``front-desk`` agent searches."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from switchboard.bootstrap import Container
from switchboard.db.uow import AccountScope, UnitOfWork
from switchboard.directory.config import DirectoryConfig
from switchboard.directory.rows import validate_rows
from switchboard.directory.synthetic import DEMO_DIRECTORIES, locations, practitioners
from switchboard.errors import Conflict
from switchboard.registry.models import layer_key
from switchboard.registry.repository import ConfigLayerRepository
from switchboard.registry.schemas import AgentCreate
from switchboard.tenancy.service import TenancyService

log = logging.getLogger("switchboard.seed")

DEMO_ACCOUNT = "demo"
DEMO_AGENT = "assistant"
DIRECTORY_AGENT = "front-desk"
DEMO_PRACTITIONERS = 1000
SEED_SOURCE = "seed (switchboard serve)"


@dataclass(frozen=True, slots=True)
class Seeded:
    created: bool
    key: str | None = None


async def seed_demo(container: Container) -> Seeded:
    """Create the demo account, its agents, directory and an API key once; later calls only
    add what is missing (the directory, on a database seeded by an older version)."""

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
    await _seed_directories(container, scope)
    if not created:
        return Seeded(created=False)
    key = await container.tenancy.create_key(scope, name="demo (made by make run)")
    return Seeded(created=True, key=key.secret)


async def _seed_directories(container: Container, scope: AccountScope) -> None:
    async def add_schemas(u: UnitOfWork) -> None:
        layers = await ConfigLayerRepository(u).for_account(scope.id)
        current = layers.get(layer_key(account_id=scope.id))
        data = dict(current.data) if current is not None else {}
        if "directories" in data:
            return
        data["directories"] = DEMO_DIRECTORIES
        source = current.source if current is not None else SEED_SOURCE
        await ConfigLayerRepository(u).put(source=source, data=data, account_id=scope.id)
        await u.commit()

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
    for name, records in generated.items():
        config: DirectoryConfig | None = schemas.get(name)
        if config is None or await container.directories.count(scope, name):
            continue
        rows = validate_rows(config, name, enumerate(records(), start=1))
        result = await container.directories.import_entries(scope, name, config, rows)
        log.info("seeded directory %s: %d entries", name, result.total)
