"""Helpers for directory tests: give an account directory schemas, import synthetic data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from switchboard.bootstrap import Container
from switchboard.db.uow import AccountScope, UnitOfWork
from switchboard.directory.rows import validate_rows
from switchboard.directory.synthetic import DEMO_DIRECTORIES
from switchboard.registry.repository import ConfigLayerRepository


async def set_directories(
    container: Container,
    scope: AccountScope,
    directories: Mapping[str, Any] | None = None,
) -> None:
    """Write the account's config layer with ``directories`` (the demo hospital's by default)."""

    async def op(u: UnitOfWork) -> None:
        await ConfigLayerRepository(u).put(
            source="test",
            data={"directories": dict(directories or DEMO_DIRECTORIES)},
            account_id=scope.id,
        )

    await container.uow.run(op, scope=scope)


async def load(
    container: Container,
    scope: AccountScope,
    directory: str,
    records: Iterable[Mapping[str, Any]],
) -> int:
    config = await container.directories.schema(scope, directory)
    rows = validate_rows(config, directory, enumerate(records, start=1))
    result = await container.directories.import_entries(scope, directory, config, rows)
    return result.total
