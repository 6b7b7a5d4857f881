"""Chat overhead benchmark: Switchboard against the fake provider, on loopback.

For each concurrency level it sends the same number of requests (1) straight to the fake
provider — the baseline — and (2) as chats through Switchboard (one provider call each, streamed
like the server streams it). Overhead per chat = its end-to-end time minus the provider time the
ledger recorded for its call (``latency_ms``), so it is what Switchboard adds: auth, the
conversation unit of work, the write-ahead ledger row and its settlement, the agent loop, HTTP.
Server CPU per chat is the server process's user + system CPU time over the level divided by
its chats (steadier than wall time on a shared machine); the provider's CPU per direct request
is measured the same way.

    .venv/bin/python benchmarks/bench_chat.py                      # SQLite
    .venv/bin/python benchmarks/bench_chat.py --postgres postgresql+asyncpg://postgres@127.0.0.1/postgres
    .venv/bin/python benchmarks/bench_chat.py --workers 2 --redis redis://127.0.0.1:6379/0

Every load loop is bounded in count and time and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.scratch_db import scratch_postgres
from tests.live import FakeProviderProcess, ServerProcess, fake_agent_body

ADMIN_KEY = "bench-admin-key-" + uuid.uuid4().hex
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
LEVELS = {1: 200, 50: 1000, 200: 2000}
# Overhead, not queueing: the provider limit is set above the highest concurrency.
UNLIMITED = {"max_concurrency": 1000}
TIME_LIMIT_S = 120  # per level and target
WARM_UP = 10  # chats (and direct calls) sent before each level, not counted: first-use costs


def cpu_ms(pid: int) -> float:
    """User + system CPU time the process and its live children (``--workers``) have used so
    far (Linux /proc), in ms."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(concurrency: int, total: int, call: Any) -> tuple[list[Any], float]:
    queue = iter(range(total))
    results: list[Any] = []
    deadline = time.monotonic() + TIME_LIMIT_S

    async def worker() -> None:
        for i in queue:
            if time.monotonic() > deadline:
                return
            results.append(await call(i))

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results, time.monotonic() - started


async def baseline(fake_url: str, pid: int, concurrency: int, total: int) -> dict[str, float]:
    body = {
        "model": "fake-model",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "hello there"},
        ],
    }
    async with httpx.AsyncClient(
        base_url=fake_url, timeout=60, limits=httpx.Limits(max_connections=concurrency)
    ) as http:

        async def call(_: int) -> float:
            started = time.perf_counter()
            async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                async for _chunk in response.aiter_bytes():
                    pass
                assert response.status_code == 200
            return (time.perf_counter() - started) * 1000

        await drive(1, WARM_UP, call)
        cpu_before = cpu_ms(pid)
        latencies, elapsed = await drive(concurrency, total, call)
        cpu = cpu_ms(pid) - cpu_before
    return {
        "cpu": cpu / len(latencies),
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "rps": len(latencies) / elapsed,
        "n": len(latencies),
    }


def _request(api: str, slug: str) -> tuple[str, dict[str, Any]]:
    """The same one-call chat through Switchboard's own route or the OpenAI-compatible one."""
    if api == "openai":
        body = {"model": f"{slug}/bot", "messages": [{"role": "user", "content": "hello there"}]}
        return "/v1/chat/completions", body
    return f"/v1/accounts/{slug}/agents/bot/chat", {"message": "hello there"}


def _ledger_ids(api: str, answer: dict[str, Any]) -> list[str]:
    return (
        answer["switchboard"]["llm_request_ids"] if api == "openai" else answer["llm_request_ids"]
    )  # type: ignore[no-any-return]


async def through_switchboard(
    base: str, pid: int, slug: str, concurrency: int, total: int, api: str = "chat"
) -> dict[str, float]:
    route, body = _request(api, slug)

    async with httpx.AsyncClient(
        base_url=base, timeout=60, headers=HEADERS, limits=httpx.Limits(max_connections=concurrency)
    ) as http:

        async def call(i: int) -> tuple[float, str] | None:
            started = time.perf_counter()
            response = await http.post(route, json=body)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                return None
            return elapsed, _ledger_ids(api, response.json())[0]

        await drive(1, WARM_UP, call)
        cpu_before = cpu_ms(pid)
        results, elapsed = await drive(concurrency, total, call)
        cpu = cpu_ms(pid) - cpu_before
        provider_ms = await ledger_latencies(http, slug)
    ok = [r for r in results if r is not None]
    e2e = [r[0] for r in ok]
    overhead = [r[0] - provider_ms[r[1]] for r in ok]
    return {
        "cpu": cpu / len(results),
        "p50": percentile(e2e, 0.5),
        "p99": percentile(e2e, 0.99),
        "rps": len(ok) / elapsed,
        "overhead_p50": percentile(overhead, 0.5),
        "overhead_p99": percentile(overhead, 0.99),
        "n": len(results),
        "failed": len(results) - len(ok),
    }


async def ledger_latencies(http: httpx.AsyncClient, slug: str) -> dict[str, float]:
    found: dict[str, float] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = (await http.get(f"/v1/accounts/{slug}/llm-requests", params=params)).json()
        found.update({row["id"]: float(row["latency_ms"] or 0) for row in page["items"]})
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def run_backend(
    name: str,
    database_url: str,
    fake: FakeProviderProcess,
    levels: dict[int, int],
    *,
    workers: int = 1,
    redis_url: str | None = None,
    api: str = "chat",
) -> list[str]:
    server = ServerProcess(
        database_url,
        admin_key=ADMIN_KEY,
        seed=False,
        env={"SWITCHBOARD_REDIS_URL": redis_url} if redis_url else None,
        args=["--workers", str(workers)],
    )
    base = server.url
    rows = []
    try:
        await server.ready()
        for concurrency, total in levels.items():
            slug = f"bench-{uuid.uuid4().hex[:8]}"
            async with httpx.AsyncClient(base_url=base, headers=HEADERS) as http:
                await http.post("/v1/accounts", json={"slug": slug, "name": slug})
                await http.post(
                    f"/v1/accounts/{slug}/agents",
                    json=fake_agent_body("bot", fake.url, limits=UNLIMITED),
                )
            await fake.reset()
            direct = await baseline(fake.url, fake.process.pid, concurrency, total)
            chats = await through_switchboard(
                base, server.process.pid, slug, concurrency, total, api
            )
            rows.append(
                f"| {name} | {concurrency} | {chats['n']:.0f} | {chats['failed']:.0f} | "
                f"{direct['p50']:.1f} / {direct['p99']:.1f} | {direct['rps']:.0f} | "
                f"{chats['p50']:.1f} / {chats['p99']:.1f} | {chats['rps']:.0f} | "
                f"**{chats['overhead_p50']:.1f}** / {chats['overhead_p99']:.1f} | "
                f"{direct['cpu']:.1f} | **{chats['cpu']:.1f}** |"
            )
            print(rows[-1], flush=True)
    finally:
        server.stop()
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="admin URL; also benchmark on a fresh PG database")
    parser.add_argument(
        "--levels",
        default=",".join(f"{c}:{n}" for c, n in LEVELS.items()),
        help="concurrency:chats pairs, e.g. 1:200,50:1000 (default: %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=1, help="server processes (serve --workers)")
    parser.add_argument(
        "--redis",
        help="Redis URL for the shared limits (without it, several workers share them "
        "through the database)",
    )
    parser.add_argument(
        "--api",
        choices=["chat", "openai"],
        default="chat",
        help="Switchboard's own /chat route, or /v1/chat/completions (to compare request for "
        "request with other OpenAI-compatible servers)",
    )
    args = parser.parse_args()
    levels = {int(c): int(n) for c, n in (pair.split(":") for pair in args.levels.split(","))}
    header = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {time.strftime('%Y-%m-%d')}; server workers: "
        f"{args.workers}; route: {args.api}",
        "",
        "| backend | concurrency | chats | failed | provider direct p50 / p99 ms | direct req/s"
        " | chat p50 / p99 ms | chats/s | overhead p50 / p99 ms"
        " | provider CPU ms / request | server CPU ms / chat |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    print("\n".join(header), flush=True)
    fake = FakeProviderProcess()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            await run_backend(
                "SQLite",
                f"sqlite+aiosqlite:///{tmp}/bench.db",
                fake,
                levels,
                workers=args.workers,
                redis_url=args.redis,
                api=args.api,
            )
        if args.postgres:
            async with scratch_postgres(args.postgres, "switchboard_bench", migrate=False) as url:
                env = {**os.environ, "SWITCHBOARD_DATABASE_URL": url}
                await asyncio.to_thread(
                    subprocess.run,
                    [sys.executable, "-m", "switchboard", "db", "upgrade"],
                    env=env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                await run_backend(
                    "PostgreSQL",
                    url,
                    fake,
                    levels,
                    workers=args.workers,
                    redis_url=args.redis,
                    api=args.api,
                )
    finally:
        fake.stop()


if __name__ == "__main__":
    asyncio.run(main())
