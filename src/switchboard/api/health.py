from __future__ import annotations

import asyncio

from fastapi import APIRouter
from sqlalchemy import text

from switchboard.api.deps import ContainerDep
from switchboard.db.uow import UnitOfWork
from switchboard.errors import DatabaseUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers")
async def readyz(container: ContainerDep) -> dict[str, str]:
    async def ping(u: UnitOfWork) -> None:
        await u.session.execute(text("SELECT 1"))

    try:
        async with asyncio.timeout(5):
            await container.uow.run(ping, write=False)
    except TimeoutError:
        raise DatabaseUnavailable("the database did not answer within 5 s") from None
    return {"status": "ready"}
