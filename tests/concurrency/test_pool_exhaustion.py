"""An exhausted pool makes callers wait up to pool_timeout, then answers 503 + Retry-After."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from switchboard.bootstrap import build_container
from switchboard.db.uow import UnitOfWork
from tests.conftest import make_settings, serving


async def test_pool_exhaustion_is_503_with_retry_after(database_url: str) -> None:
    settings = make_settings(
        database_url,
        db_pool_size=1,
        db_max_overflow=0,
        db_pool_timeout_s=0.2,
        db_retry_attempts=1,
    )
    async with serving(settings) as (app, client):
        container = app.state.container
        holding = asyncio.Event()
        release = asyncio.Event()

        async def hold_the_only_connection(u: UnitOfWork) -> None:
            await u.session.execute(text("SELECT 1"))
            holding.set()
            await release.wait()

        holder = asyncio.create_task(container.uow.run(hold_the_only_connection, write=False))
        await holding.wait()
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"] == {
            "code": "DATABASE_BUSY",
            "message": "all database connections are in use; try again shortly",
            "retryable": True,
            "class": "transient",
        }
        release.set()
        await holder
        assert (await client.get("/readyz")).status_code == 200  # and it recovers


async def test_callers_wait_for_a_connection_instead_of_failing(database_url: str) -> None:
    settings = make_settings(database_url, db_pool_size=1, db_max_overflow=0, db_pool_timeout_s=10)
    container = await build_container(settings)
    try:

        async def ping(u: UnitOfWork) -> int:
            return int((await u.session.execute(text("SELECT 1"))).scalar_one())

        results = await asyncio.gather(*(container.uow.run(ping, write=False) for _ in range(30)))
        assert results == [1] * 30
    finally:
        await container.aclose()
