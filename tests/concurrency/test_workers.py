"""``switchboard serve --workers N``: N processes on one port whose provider limits stay exact,
through Redis when it is configured and through the database when it is not."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from switchboard.traffic.models import LimiterSlot
from tests.concurrency.test_traffic import _agent
from tests.conftest import ADMIN, ADMIN_KEY
from tests.live import FakeProviderProcess, ServerProcess

CHATS = 100
LIMIT = 5


def _workers(pid: int) -> list[int]:
    """The worker processes uvicorn's supervisor ``pid`` spawned (not its resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return found


async def test_two_workers_keep_the_provider_limit_exact(
    database_url: str, redis_url: str, fake: FakeProviderProcess
) -> None:
    await fake.reset(latency_s=0.05)
    provider = f"fake{uuid.uuid4().hex[:8]}"  # its own Redis keys
    server = ServerProcess(
        database_url,
        admin_key=ADMIN_KEY,
        seed=False,
        env={"SWITCHBOARD_REDIS_URL": redis_url},
        args=["--workers", "2"],
    )
    statuses, workers = await _chats(server, fake, provider, ready_s=30, client_s=60)
    assert len(workers) == 2, workers
    assert statuses == {200: CHATS}
    stats = await fake.stats()
    assert stats["requests_total"] == CHATS
    assert stats["in_flight_max"] <= LIMIT


async def test_two_workers_without_redis_keep_the_provider_limit_exact(
    database_url: str, fake: FakeProviderProcess
) -> None:
    """No Redis: ``serve --workers 2`` shares the limit through the database (SQLite file or
    PostgreSQL), and every slot is released when the calls end."""
    await fake.reset(latency_s=0.05)
    provider = f"fake{uuid.uuid4().hex[:8]}"  # its own limiter keys
    server = ServerProcess(database_url, admin_key=ADMIN_KEY, seed=False, args=["--workers", "2"])
    statuses, workers = await _chats(server, fake, provider, ready_s=60, client_s=90)
    assert len(workers) == 2, workers
    assert statuses == {200: CHATS}
    stats = await fake.stats()
    assert stats["requests_total"] == CHATS
    assert stats["in_flight_max"] <= LIMIT
    assert await _slots_held(database_url, provider) == 0


async def _chats(
    server: ServerProcess,
    fake: FakeProviderProcess,
    provider: str,
    *,
    ready_s: float,
    client_s: float,
) -> tuple[Counter[int], list[int]]:
    """CHATS chats released at once against an agent limited to LIMIT on ``provider``: their
    status codes, and the worker processes that served them. Stops the server."""
    try:
        await server.ready(timeout_s=ready_s)
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            slug = await _agent(http, fake, provider=provider, limits={"max_concurrency": LIMIT})
        barrier = asyncio.Barrier(CHATS)

        async def one(i: int) -> int:
            async with httpx.AsyncClient(base_url=server.url, timeout=client_s) as client:
                await barrier.wait()
                response = await client.post(
                    f"/v1/accounts/{slug}/agents/bot/chat", headers=ADMIN, json={"message": f"m{i}"}
                )
                return response.status_code

        async with asyncio.timeout(180):
            statuses = Counter(await asyncio.gather(*(one(i) for i in range(CHATS))))
        return statuses, _workers(server.process.pid)
    finally:
        server.stop()


async def _slots_held(database_url: str, provider: str) -> int:
    """Slot rows left in the database under ``provider``'s limiter keys."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            statement = select(func.count()).where(LimiterSlot.key.startswith(provider))
            return int((await connection.execute(statement)).scalar_one())
    finally:
        await engine.dispose()
