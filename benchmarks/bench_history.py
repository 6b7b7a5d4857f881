"""Does a chat cost more as the data grows? One `switchboard serve` on a fresh SQLite file and
the fake provider; chats at concurrency 1 measured (server CPU per chat, p50) on an empty
database, in a conversation grown to ``--messages`` messages, and again after ``--rows`` ledger
rows were added to the same account (inserted directly, in batches, while the server runs).

    .venv/bin/python benchmarks/bench_history.py                 # 1 000 messages, 1 000 000 rows
    .venv/bin/python benchmarks/bench_history.py --rows 100000   # quicker

Every loop is bounded in count and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_chat import ADMIN_KEY, HEADERS, UNLIMITED, WARM_UP, cpu_ms, percentile
from tests.live import FakeProviderProcess, ServerProcess, fake_agent_body

from switchboard.ledger.models import LlmRequest

BATCH = 5_000


async def chats(
    http: httpx.AsyncClient, pid: int, slug: str, n: int, conversation: str | None
) -> tuple[float, float]:
    """``n`` chats one after the other (after a warm-up): server CPU ms per chat, p50 ms."""
    body: dict[str, Any] = {"message": "hello there"}
    if conversation is not None:
        body["conversation_id"] = conversation
    url = f"/v1/accounts/{slug}/agents/bot/chat"
    for _ in range(WARM_UP):
        (await http.post(url, json=body)).raise_for_status()
    before = cpu_ms(pid)
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        (await http.post(url, json=body)).raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
    return (cpu_ms(pid) - before) / n, percentile(latencies, 0.5)


async def seed_ledger(database_url: str, account_id: uuid.UUID, slug: str, rows: int) -> None:
    engine = create_async_engine(database_url)
    now = datetime.now(UTC)
    done = 0
    try:
        while done < rows:
            batch = [
                {
                    "id": uuid.uuid4(),
                    "account_id": account_id,
                    "account_slug": slug,
                    "agent_slug": "bot",
                    "run_id": uuid.uuid4(),
                    "kind": "chat",
                    "provider": "fake",
                    "model": "fake-model",
                    "status": "complete",
                    "usage_source": "reported",
                    "input_tokens": 20,
                    "output_tokens": 10,
                    "cached_tokens": 0,
                    "cost_nano_usd": 900,
                    "priced": True,
                    "budget_hold_nano_usd": 0,
                    "latency_ms": 5,
                    "created_at": now,
                    "deadline_at": now,
                    "finished_at": now,
                }
                for _ in range(min(BATCH, rows - done))
            ]
            async with engine.begin() as connection:
                await connection.execute(insert(LlmRequest), batch)
            done += len(batch)
            print(f"  ledger rows: {done}/{rows}", end="\r", flush=True)
        print()
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000, help="history of the long one")
    parser.add_argument("--rows", type=int, default=1_000_000, help="ledger rows to add")
    parser.add_argument("--chats", type=int, default=200, help="chats measured per case")
    args = parser.parse_args()
    fake = FakeProviderProcess()
    results: list[tuple[str, float, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/history.db"
            server = ServerProcess(url, admin_key=ADMIN_KEY, seed=False)
            try:
                await server.ready()
                pid = server.process.pid
                async with httpx.AsyncClient(
                    base_url=server.url, headers=HEADERS, timeout=60
                ) as http:
                    slug = f"hist-{uuid.uuid4().hex[:8]}"
                    account = (
                        await http.post("/v1/accounts", json={"slug": slug, "name": slug})
                    ).json()
                    await http.post(
                        f"/v1/accounts/{slug}/agents",
                        json=fake_agent_body("bot", fake.url, limits=UNLIMITED),
                    )
                    results.append(
                        (
                            "empty database, new conversations",
                            *await chats(http, pid, slug, args.chats, None),
                        )
                    )
                    long = str(uuid.uuid4())
                    grow = max(args.messages // 2 - 2 * WARM_UP, 0)  # + the warm-ups: ≈ messages
                    print(f"growing one conversation to {args.messages} messages", flush=True)
                    await chats(http, pid, slug, grow, long)
                    results.append(
                        (
                            f"a conversation of ≈ {args.messages} messages",
                            *await chats(http, pid, slug, args.chats, long),
                        )
                    )
                    print(f"adding {args.rows} ledger rows to the account", flush=True)
                    await seed_ledger(url, uuid.UUID(account["id"]), slug, args.rows)
                    results.append(
                        (
                            f"+ {args.rows} ledger rows, new conversations",
                            *await chats(http, pid, slug, args.chats, None),
                        )
                    )
                    results.append(
                        (
                            f"+ {args.rows} ledger rows, the long conversation",
                            *await chats(http, pid, slug, args.chats, long),
                        )
                    )
            finally:
                server.stop()
    finally:
        fake.stop()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {time.strftime('%Y-%m-%d')}; SQLite\n"
    )
    print("| case | server CPU ms / chat | chat p50 ms |\n| --- | --- | --- |")
    for label, cpu, p50 in results:
        print(f"| {label} | {cpu:.1f} | {p50:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
