"""``/healthz``: the process answers. ``/readyz``: it can serve — the database answers, the
shared limiter (Redis, when configured) answers, and first-start seeding is over. Not ready is a
503 with a stable code and Retry-After, so a load balancer keeps traffic away."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, runtime_checkable

from fastapi import APIRouter, Request
from sqlalchemy import text

from switchboard.api.deps import ContainerDep
from switchboard.db.uow import UnitOfWork
from switchboard.errors import DatabaseUnavailable, LimiterUnavailable, TransientError

router = APIRouter(tags=["health"])
log = logging.getLogger("switchboard.api")
READY_TIMEOUT_S = 5.0
# app.state attribute a first-start task sets while it works (see switchboard.operations.seed).
STARTING_STATE = "starting"


@runtime_checkable
class Pingable(Protocol):
    async def ping(self) -> None: ...


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database and the shared limiter answer; startup is over")
async def readyz(request: Request, container: ContainerDep) -> dict[str, str]:
    async def ping(u: UnitOfWork) -> None:
        await u.session.execute(text("SELECT 1"))

    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await container.uow.run(ping, write=False)
    except TimeoutError:
        raise DatabaseUnavailable("the database did not answer within 5 s") from None
    limiter = container.limiter
    if isinstance(limiter, Pingable):
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await limiter.ping()
        except (TimeoutError, LimiterUnavailable) as exc:
            log.warning("not ready: the shared limiter does not answer: %s", exc)
            # The detail (host, port) stays in the log: this endpoint needs no key.
            raise LimiterUnavailable(
                "the shared limiter (Redis) does not answer", retry_after_s=1.0
            ) from None
    starting = getattr(request.app.state, STARTING_STATE, None)
    if starting:
        raise TransientError(f"starting: {starting}", code="STARTING", retry_after_s=2.0)
    return {"status": "ready"}
